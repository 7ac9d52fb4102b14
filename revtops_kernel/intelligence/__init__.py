"""Revenue intelligence over the common schema: deal risk, pipeline movement, quotas."""
