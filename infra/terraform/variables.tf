variable "region" {
  description = "AWS region that holds the handoff bucket, the audit bucket and the KMS key."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the handoff bucket the recipient agency reads from (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lower-case letters, digits, dots or hyphens."
  }
}

variable "audit_bucket_name" {
  description = "Name of the Object Lock audit bucket for manifest and ledger copies. Default: \"<bucket_name>-audit\"."
  type        = string
  default     = null
}

variable "recipient_role_arn" {
  description = "IAM role ARN in the recipient agency's AWS account that may list and read the handoff prefix."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$", var.recipient_role_arn))
    error_message = "recipient_role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/handoff-reader."
  }
}

variable "recipient_prefix" {
  description = "Key prefix the recipient may list and read (the app's HANDOFF_PREFIX, e.g. \"deliveries/\"). Empty means the whole bucket."
  type        = string
  default     = ""
}

variable "kms_key_deletion_days" {
  description = "Waiting period (7-30 days) before a scheduled deletion of the KMS key takes effect."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_days >= 7 && var.kms_key_deletion_days <= 30
    error_message = "kms_key_deletion_days must be between 7 and 30."
  }
}

variable "noncurrent_days" {
  description = "Days after which noncurrent (overwritten or deleted) object versions in the handoff bucket expire."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_days >= 1
    error_message = "noncurrent_days must be at least 1."
  }
}

variable "audit_retention_days" {
  description = "Default Object Lock retention (COMPLIANCE mode) in days for the audit bucket. Objects cannot be deleted or overwritten by anyone, root included, until it ends; there is deliberately no default."
  type        = number

  validation {
    condition     = var.audit_retention_days >= 1 && floor(var.audit_retention_days) == var.audit_retention_days
    error_message = "audit_retention_days must be a whole number of days, at least 1."
  }
}

variable "tags" {
  description = "Tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
}

variable "break_glass_role_arn" {
  description = "The only IAM role that may delete objects (or add delete markers) in the audit bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/.+$", var.break_glass_role_arn))
    error_message = "break_glass_role_arn must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/audit-break-glass."
  }
}
