"""tap-pipedrive: a Singer tap for Pipedrive CRM."""
