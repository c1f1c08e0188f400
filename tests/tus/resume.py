"""Uploads a photo with tuspy, the standard Python tus client: sends two
chunks, "loses the connection", then resumes from the server's offset with a
fresh client, as a phone does after a network drop.

usage: resume.py ENDPOINT TOKEN AUDIT_ID ITEM FILE
prints JSON: {"resumed_at": offset, "url": upload_url}
"""
import hashlib
import json
import sys

from tusclient import client
from tusclient.uploader import Uploader

# Dostup implements the checksum extension with sha256.
Uploader.CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

endpoint, token, audit_id, item, path = sys.argv[1:6]
headers = {"Authorization": "Bearer " + token}
chunk = 64 * 1024

first = client.TusClient(endpoint, headers=headers).uploader(
    file_path=path,
    chunk_size=chunk,
    metadata={"audit_id": audit_id, "item": item, "filename": "IMG_0042.jpg"},
    upload_checksum=True,
)
first.upload_chunk()
first.upload_chunk()
url = first.url

# The connection is gone; a new client picks the upload up by its URL.
second = client.TusClient(endpoint, headers=headers).uploader(
    file_path=path, url=url, chunk_size=chunk, upload_checksum=True
)
resumed_at = second.offset
second.upload()
print(json.dumps({"resumed_at": resumed_at, "url": url}))
