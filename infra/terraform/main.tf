# Handoff bucket for the court-ordered transfer of (synthetic) Medicaid enrollee records,
# plus the KMS key that encrypts it and an Object Lock audit bucket for manifest/ledger copies.
#
# Checked here only by `terraform fmt -check` and by tests/test_infra.py (HCL parsing).
# `terraform validate` / `plan` were NOT run: no provider download in the build sandbox.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_root      = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  audit_bucket_name = coalesce(var.audit_bucket_name, "${var.bucket_name}-audit")
  recipient_objects = "${aws_s3_bucket.handoff.arn}/${var.recipient_prefix}*"
}

# ---------------------------------------------------------------------------------------
# KMS key (customer managed, so the recipient account can be granted Decrypt on it; the
# AWS-managed aws/s3 key cannot be shared across accounts).
# ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111:A key policy's resource "*" is the key itself; write access is the owning account's administration
  # checkov:skip=CKV_AWS_356:In a KMS key policy, resource "*" means this key and nothing else
  # checkov:skip=CKV_AWS_109:Key administration by the owning account root is how a KMS key stays manageable
  statement {
    sid       = "KeyAdministrationByOwningAccount"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "RecipientDecryptThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [var.recipient_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
    }

    # With an S3 Bucket Key the encryption context is the bucket ARN; without one it is
    # the object ARN. Both forms are allowed so turning the bucket key off cannot lock
    # the recipient out.
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [aws_s3_bucket.handoff.arn, "${aws_s3_bucket.handoff.arn}/*"]
    }
  }
}

resource "aws_kms_key" "handoff" {
  description             = "SSE-KMS key for the ${var.bucket_name} handoff bucket"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_days
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "handoff" {
  name          = "alias/${replace(var.bucket_name, ".", "-")}"
  target_key_id = aws_kms_key.handoff.key_id
}

# ---------------------------------------------------------------------------------------
# Handoff bucket
# ---------------------------------------------------------------------------------------

resource "aws_s3_bucket" "handoff" {
  # checkov:skip=CKV_AWS_18:Object-level reads (the recipient collecting) are audited by CloudTrail S3 data events, not best-effort server access logs
  # checkov:skip=CKV_AWS_144:Medicaid records may not be copied to another region than the data-sharing agreement names
  bucket        = var.bucket_name
  force_destroy = false
}

# Every delivery, withdrawal and collection is an event on EventBridge (alerting, SIEM).
resource "aws_s3_bucket_notification" "handoff" {
  bucket      = aws_s3_bucket.handoff.id
  eventbridge = true
}

resource "aws_s3_bucket_ownership_controls" "handoff" {
  bucket = aws_s3_bucket.handoff.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "handoff" {
  bucket = aws_s3_bucket.handoff.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "handoff" {
  bucket = aws_s3_bucket.handoff.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "handoff" {
  bucket = aws_s3_bucket.handoff.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.handoff.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "handoff" {
  bucket = aws_s3_bucket.handoff.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.handoff]
}

data "aws_iam_policy_document" "handoff_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.handoff.arn,
      "${aws_s3_bucket.handoff.arn}/*",
    ]

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

  # A PutObject without `x-amz-server-side-encryption: aws:kms` is refused outright
  # (a missing header also makes StringNotEquals true).
  statement {
    sid       = "DenyPutWithoutSseKms"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.handoff.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }

  # The key id must be this key's ARN. A missing key id is refused too: S3 would then use
  # the AWS-managed aws/s3 key, which the recipient account can never decrypt.
  statement {
    sid       = "DenyPutWithOtherKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.handoff.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.handoff.arn]
    }
  }

  statement {
    sid       = "RecipientListPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.handoff.arn]

    principals {
      type        = "AWS"
      identifiers = [var.recipient_role_arn]
    }

    dynamic "condition" {
      for_each = var.recipient_prefix == "" ? [] : [var.recipient_prefix]
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${condition.value}*"]
      }
    }
  }

  statement {
    sid       = "RecipientReadPrefix"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.recipient_objects]

    principals {
      type        = "AWS"
      identifiers = [var.recipient_role_arn]
    }
  }
}

resource "aws_s3_bucket_policy" "handoff" {
  bucket = aws_s3_bucket.handoff.id
  policy = data.aws_iam_policy_document.handoff_bucket.json

  # Apply the public access block first so the policy never lands on an unguarded bucket.
  depends_on = [aws_s3_bucket_public_access_block.handoff]
}

# ---------------------------------------------------------------------------------------
# Audit bucket: write-once copies of manifests and ledger exports (Object Lock, COMPLIANCE)
# ---------------------------------------------------------------------------------------

resource "aws_s3_bucket" "audit" {
  # checkov:skip=CKV_AWS_18:Object-level reads and writes are audited by CloudTrail S3 data events (the agency's organization trail), not best-effort server access logs
  # checkov:skip=CKV_AWS_144:The evidence stays in the region of the data-sharing agreement; a cross-region copy is the agency's decision, made outside this module
  bucket              = local.audit_bucket_name
  object_lock_enabled = true
  force_destroy       = false
}

# Every object written or removed is an event on EventBridge (alerting, SIEM).
resource "aws_s3_bucket_notification" "audit" {
  bucket      = aws_s3_bucket.audit.id
  eventbridge = true
}

resource "aws_s3_bucket_ownership_controls" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket = aws_s3_bucket.audit.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.audit_retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.handoff.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit]
}

data "aws_iam_policy_document" "audit_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.audit.arn,
      "${aws_s3_bucket.audit.arn}/*",
    ]

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

  statement {
    sid       = "DenyPutWithoutSseKms"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }

  # Object Lock refuses deleting a locked version, but a plain DELETE still adds a delete marker that
  # hides an anchor or a stop from ordinary listings. Nobody but the break-glass role deletes here.
  statement {
    sid       = "DenyDeleteExceptBreakGlass"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.audit.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [var.break_glass_role_arn]
    }
  }
}

resource "aws_s3_bucket_policy" "audit" {
  bucket = aws_s3_bucket.audit.id
  policy = data.aws_iam_policy_document.audit_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.audit]
}
