resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alert_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_log_group" "pipeline" {
  name              = "/vitalflow/${var.name_prefix}/pipeline"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

locals {
  # alarm name => (metric, comparison, threshold, statistic) per database instance.
  database_alarms = merge([
    for id in var.rds_instance_ids : {
      "${id}-cpu"         = { id = id, metric = "CPUUtilization", op = "GreaterThanThreshold", threshold = var.cpu_alarm_percent }
      "${id}-storage"     = { id = id, metric = "FreeStorageSpace", op = "LessThanThreshold", threshold = var.free_storage_alarm_gb * 1073741824 }
      "${id}-replica-lag" = { id = id, metric = "ReplicaLag", op = "GreaterThanThreshold", threshold = var.replica_lag_alarm_seconds }
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "database" {
  for_each            = local.database_alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "vitalflow database ${each.value.id}: ${each.value.metric}"
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  dimensions          = { DBInstanceIdentifier = each.value.id }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = each.value.op
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "raw_dead_letters" {
  alarm_name          = "${var.name_prefix}-raw-events-dead-letters"
  alarm_description   = "A raw input file's event was never processed: run `vitalflow run --input` on it"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.raw_dead_letter_queue }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}
