"""Blob storage: bytes in, a key out, verified bytes back; the local filesystem by default,
S3 through boto3 when a bucket is set; and the tenant's record of each stored file."""
