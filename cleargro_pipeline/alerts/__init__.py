"""Alerts: detection (dbt `insights.alert_detections` and platform checks), one lifecycle
record per condition (`insights.alerts`), and at-least-once delivery to the tenant's channels."""
