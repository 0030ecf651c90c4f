output "bucket_name" {
  description = "Handoff bucket name (HANDOFF_BUCKET)."
  value       = aws_s3_bucket.handoff.id
}

output "bucket_arn" {
  description = "Handoff bucket ARN."
  value       = aws_s3_bucket.handoff.arn
}

output "kms_key_arn" {
  description = "KMS key ARN. Use this full ARN as HANDOFF_KMS_KEY_ID: the bucket policy compares the request's key id with it."
  value       = aws_kms_key.handoff.arn
}

output "kms_key_alias" {
  description = "Alias of the KMS key (for people; the bucket policy needs the ARN)."
  value       = aws_kms_alias.handoff.name
}

output "audit_bucket_name" {
  description = "Object Lock (COMPLIANCE) bucket for audit copies of manifests and the ledger."
  value       = aws_s3_bucket.audit.id
}

output "audit_bucket_arn" {
  description = "Audit bucket ARN."
  value       = aws_s3_bucket.audit.arn
}
