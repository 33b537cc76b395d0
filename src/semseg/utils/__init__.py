"""Helpers the entry points share: config composition and checks, resolvers, the sweep leaderboard, run facts,
atomic file writes."""
