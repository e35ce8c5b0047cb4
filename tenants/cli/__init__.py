"""Every operator command, registered one way; commands present results and exit, nothing more."""
