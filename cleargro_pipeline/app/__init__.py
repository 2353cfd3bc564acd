"""The app service (`cleargro serve`): one ASGI application (Starlette under uvicorn) for
everything Shopify, and later Google, calls or sends a merchant to: Shopify's webhooks, the
Shopify app's OAuth install and callback, a health check. Design: `app/README.md`."""
