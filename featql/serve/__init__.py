"""The online half of featql: online stores, online materialization, request transforms and the
feature server. See README.md in this folder. Heavy imports (boto3, flask) stay lazy."""
