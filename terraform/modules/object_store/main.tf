# Three buckets: data (raw input and the Iceberg warehouse), audit (object-locked anchors of the
# ledger) and logs (server access logs of the other two).
locals {
  buckets = {
    data  = "${var.name_prefix}-data"
    audit = "${var.name_prefix}-audit"
    logs  = "${var.name_prefix}-access-logs"
  }
}

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Single-region by design (patient data stays in the region); backups are versioned objects plus RDS snapshots.
  bucket        = local.buckets.data
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket" "audit" {
  #checkov:skip=CKV_AWS_144:Single-region by design; object lock already forbids deletion.
  #checkov:skip=CKV2_AWS_62:Anchors are written by the pipeline itself; nothing reacts to them.
  bucket              = local.buckets.audit
  object_lock_enabled = true
  tags                = var.tags
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Access logs stay in the region of the buckets they describe.
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it into itself would loop.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to access logs.
  bucket = local.buckets.logs
  tags   = var.tags
}

locals {
  all_buckets = { data = aws_s3_bucket.data, audit = aws_s3_bucket.audit, logs = aws_s3_bucket.logs }
}

resource "aws_s3_bucket_public_access_block" "all" {
  for_each                = local.all_buckets
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "all" {
  for_each = local.all_buckets
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "all" {
  for_each = local.all_buckets
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "all" {
  for_each = local.all_buckets
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "logged" {
  for_each      = { data = aws_s3_bucket.data, audit = aws_s3_bucket.audit }
  bucket        = each.value.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_object_lock_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.audit_retention_days
    }
  }
}

# TLS only, on every bucket.
data "aws_iam_policy_document" "tls_only" {
  for_each = local.all_buckets
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = local.all_buckets
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}
