"""Workflows: state machines (transitions, guards) and automations (actions, time rules, the webhook outbox)."""
