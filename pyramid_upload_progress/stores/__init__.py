"""Upload progress stores: where upload records are kept."""
