"""The sample exports (Salesforce, and from it HubSpot, Dynamics 365 and GLEIF), with their hidden rules in one place."""
