"""Declare service endpoints as actions; authentication and scopes come for free."""
