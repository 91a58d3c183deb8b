output "data_bucket" {
  description = "Bucket of the raw input and the Iceberg warehouse (s3.bucket)."
  value       = aws_s3_bucket.data.bucket
}

output "audit_bucket" {
  description = "Object-locked bucket of the audit anchors."
  value       = aws_s3_bucket.audit.bucket
}

output "warehouse" {
  description = "Iceberg warehouse URI (iceberg.warehouse)."
  value       = "s3://${aws_s3_bucket.data.bucket}/${trimsuffix(var.warehouse_prefix, "/")}"
}

output "raw_uri" {
  description = "Where input files land to be ingested."
  value       = "s3://${aws_s3_bucket.data.bucket}/${var.raw_prefix}"
}

output "raw_events_queue_url" {
  description = "SQS queue receiving an event per new raw input object."
  value       = aws_sqs_queue.raw_events.id
}

output "bucket_arns" {
  description = "Bucket ARNs, for the workers' IAM policy."
  value       = { for name, bucket in local.all_buckets : name => bucket.arn }
}

output "raw_dead_letter_queue" {
  description = "Name of the dead-letter queue of raw-file events."
  value       = aws_sqs_queue.raw_events_dead.name
}
