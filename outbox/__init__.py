"""Transactional outbox: events written in the producer's transaction, dispatched by a relay."""
