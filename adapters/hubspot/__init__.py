"""HubSpot CRM: the adapter (``adapter.HubSpotCrm``) and its local emulator (``emulator``)."""
