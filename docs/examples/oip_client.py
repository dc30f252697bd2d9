#!/usr/bin/env python3
"""Call a Gantry endpoint over the Open Inference Protocol v2, the protocol KServe and Triton
clients speak, with nothing but numpy and requests.

    export GANTRY_TOKEN=gty_...            # Settings → API tokens (the read scope is enough)
    python3 oip_client.py http://localhost:8500 my-endpoint x=input.npy [more=inputs.npy] [--binary]

Each input is a .npy file named after the model's input. Outputs are printed as JSON
({"<output>": {"datatype", "shape", "data"}}). With --binary, tensors travel as raw bytes
(the binary tensor data extension) instead of JSON numbers: smaller and faster for large inputs.
"""
import json
import os
import sys

import numpy as np
import requests

NUMPY_TO_OIP = {
    np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
    np.dtype(np.int8): "INT8", np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16", np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64",
    np.dtype(np.bool_): "BOOL",
}
OIP_TO_NUMPY = {v: k for k, v in NUMPY_TO_OIP.items()}


def infer(base_url, model, token, inputs, binary=False, timeout=30):
    """inputs: {name: numpy array}. Returns {output name: numpy array of the output's shape}."""
    headers = {"Authorization": f"Bearer {token}"}
    tensors, chunks = [], []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        tensor = {"name": name, "shape": list(array.shape), "datatype": NUMPY_TO_OIP[array.dtype]}
        if binary:
            raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = array.flatten().tolist()
        tensors.append(tensor)
    request = {"inputs": tensors}
    if binary:
        request["parameters"] = {"binary_data_output": True}
        header = json.dumps(request).encode()
        headers["Inference-Header-Content-Length"] = str(len(header))
        headers["Content-Type"] = "application/octet-stream"
        response = requests.post(f"{base_url}/v2/models/{model}/infer", data=header + b"".join(chunks), headers=headers, timeout=timeout)
    else:
        response = requests.post(f"{base_url}/v2/models/{model}/infer", json=request, headers=headers, timeout=timeout)
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text}")

    body = response.content
    json_length = int(response.headers.get("Inference-Header-Content-Length", len(body)))
    result = json.loads(body[:json_length])
    offset, outputs = json_length, {}
    for output in result["outputs"]:
        dtype = OIP_TO_NUMPY[output["datatype"]]
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            values = np.asarray(output["data"], dtype=dtype)
        else:
            values = np.frombuffer(body[offset:offset + size], dtype=dtype.newbyteorder("<"))
            offset += size
        outputs[output["name"]] = values.reshape(output["shape"])
    return outputs


def main(argv):
    args = [a for a in argv if a != "--binary"]
    if len(args) < 3:
        sys.exit(__doc__)
    base_url, model = args[0].rstrip("/"), args[1]
    inputs = {}
    for spec in args[2:]:
        name, _, path = spec.partition("=")
        inputs[name] = np.load(path)
    outputs = infer(base_url, model, os.environ["GANTRY_TOKEN"], inputs, binary="--binary" in argv)
    print(json.dumps({name: {"datatype": NUMPY_TO_OIP[a.dtype.newbyteorder("=")], "shape": list(a.shape), "data": a.flatten().tolist()} for name, a in outputs.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
