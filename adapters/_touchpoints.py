"""What one touchpoint record carries into either CRM, shared by the Salesforce and HubSpot
descriptions of the touchpoint object (``adapters/salesforce/touchpoint_object.py``,
``adapters/hubspot/touchpoint_schema.py``).

Credit and revenue get one field per attribution model. The CRM schema is deployed once by an
admin, so it carries the models closedloop ships by default rather than whatever a config names.
"""

from __future__ import annotations

ATTRIBUTION_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "linear", "w_shaped")
