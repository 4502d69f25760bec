"""The reference agent and the fleet simulator."""
