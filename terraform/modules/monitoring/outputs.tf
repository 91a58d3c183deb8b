output "alert_topic_arn" {
  description = "SNS topic of the alerts (Prefect automations and Alertmanager can publish to it too)."
  value       = aws_sns_topic.alerts.arn
}

output "log_group" {
  description = "CloudWatch log group of the pipeline."
  value       = aws_cloudwatch_log_group.pipeline.name
}
