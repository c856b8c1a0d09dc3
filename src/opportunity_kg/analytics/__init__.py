"""What the store answers: the canned queries and their results, what the data supports, the forecast and the matching of accounts."""
