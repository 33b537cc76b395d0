"""Callbacks that turn validation results into pictures and tables for every logger."""
