# New raw input files raise an event on this queue; the Prefect event bridge turns each into a
# vitalflow event that triggers ingest -> refine -> derive.
resource "aws_sqs_queue" "raw_events" {
  name                       = "${var.name_prefix}-raw-events"
  kms_master_key_id          = var.kms_key_arn
  message_retention_seconds  = 1209600
  visibility_timeout_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.raw_events_dead.arn
    maxReceiveCount     = 5
  })
  tags = var.tags
}

resource "aws_sqs_queue" "raw_events_dead" {
  name                      = "${var.name_prefix}-raw-events-dead"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
  tags                      = var.tags
}

data "aws_iam_policy_document" "raw_events" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.raw_events.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.data.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "raw_events" {
  queue_url = aws_sqs_queue.raw_events.id
  policy    = data.aws_iam_policy_document.raw_events.json
}

resource "aws_s3_bucket_notification" "data" {
  bucket = aws_s3_bucket.data.id
  queue {
    queue_arn     = aws_sqs_queue.raw_events.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.raw_prefix
  }
  depends_on = [aws_sqs_queue_policy.raw_events]
}
