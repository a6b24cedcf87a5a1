"""The bridge core: what both sides share (commands now; users, contacts, portals next)."""
