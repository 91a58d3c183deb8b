# AWS RDS: a Multi-AZ primary and read replicas. The admin password is created and kept by RDS in
# Secrets Manager (manage_master_user_password), so Terraform never sees it.
locals {
  rds = var.variant == "rds" ? 1 : 0
}

resource "aws_db_subnet_group" "main" {
  count      = local.rds
  name       = var.name_prefix
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_db_parameter_group" "main" {
  count  = local.rds
  name   = var.name_prefix
  family = "postgres${var.engine_version}"
  tags   = var.tags

  # TLS only; connections and slow statements logged (statement text carries no patient data:
  # vitalflow binds values as parameters).
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "5000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  count              = local.rds
  name               = "${var.name_prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  count      = local.rds
  role       = aws_iam_role.monitoring[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

locals {
  # Settings shared by the primary and its replicas.
  rds_common = {
    instance_class                  = var.instance_class
    kms_key_id                      = var.kms_key_arn
    performance_insights_kms_key_id = var.kms_key_arn
    monitoring_role_arn             = try(aws_iam_role.monitoring[0].arn, null)
  }
}

resource "aws_db_instance" "primary" {
  count                               = local.rds
  identifier                          = var.name_prefix
  engine                              = "postgres"
  engine_version                      = var.engine_version
  instance_class                      = local.rds_common.instance_class
  db_name                             = var.database_name
  username                            = "vitalflow_admin"
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.kms_key_arn
  allocated_storage                   = var.storage_gb
  max_allocated_storage               = var.max_storage_gb
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = local.rds_common.kms_key_id
  multi_az                            = var.multi_az
  db_subnet_group_name                = aws_db_subnet_group.main[0].name
  vpc_security_group_ids              = var.security_group_ids
  parameter_group_name                = aws_db_parameter_group.main[0].name
  publicly_accessible                 = false
  iam_database_authentication_enabled = true
  backup_retention_period             = var.backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name_prefix}-final"
  auto_minor_version_upgrade          = true
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = local.rds_common.performance_insights_kms_key_id
  monitoring_interval                 = 30
  monitoring_role_arn                 = local.rds_common.monitoring_role_arn
  tags                                = var.tags
}

resource "aws_db_instance" "replica" {
  count                               = var.variant == "rds" ? var.replicas : 0
  identifier                          = "${var.name_prefix}-replica-${count.index + 1}"
  replicate_source_db                 = aws_db_instance.primary[0].identifier
  instance_class                      = local.rds_common.instance_class
  storage_encrypted                   = true
  kms_key_id                          = local.rds_common.kms_key_id
  multi_az                            = var.multi_az
  vpc_security_group_ids              = var.security_group_ids
  parameter_group_name                = aws_db_parameter_group.main[0].name
  publicly_accessible                 = false
  iam_database_authentication_enabled = true
  backup_retention_period             = var.backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = true
  auto_minor_version_upgrade          = true
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = local.rds_common.performance_insights_kms_key_id
  monitoring_interval                 = 30
  monitoring_role_arn                 = local.rds_common.monitoring_role_arn
  tags                                = var.tags
}
