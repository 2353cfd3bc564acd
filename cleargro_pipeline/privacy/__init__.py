"""Shopper privacy: erasure and access requests, their durable log, and Shopify's privacy webhooks."""
