"""What the fleet said, kept: the historian (SQLite), queries and exports, the dashboard, and the same
on AWS (IoT rules into Timestream, alerts to SNS)."""
