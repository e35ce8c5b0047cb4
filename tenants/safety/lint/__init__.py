"""The migration lint: render revisions to SQL, parse them, report hazards."""
