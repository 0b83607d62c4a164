"""Salesforce: Lead/Contact people and Opportunity deals (``adapter``), local org (``emulator``)."""
