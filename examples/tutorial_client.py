"""The tutorial's client: post five numbers as ``{"features": [...]}`` and print the answer.

python examples/tutorial_client.py [URL]      # default http://127.0.0.1:5000/predict
"""

import sys

import requests

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000/predict"
data = {"features": [0.5, 1.2, -0.3, 0.8, -1.5]}
response = requests.post(url, json=data, timeout=30)
print(response.status_code)
print(response.json())
