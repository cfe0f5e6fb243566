"""One module per way of proving who you are. Each ends in tokens.issue(user, amr)."""
