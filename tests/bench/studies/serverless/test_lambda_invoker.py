"""The AWS Lambda invoker's requests and its reading of Lambda's answers, against botocore's Stubber only."""
import base64
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from bench.studies.serverless import cost, invokers

pytestmark = pytest.mark.unit
SPEC = invokers.FunctionSpec("alexnet-Conv_1", 2048, 300)


def _client():
    return boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def _body(doc) -> StreamingBody:
    raw = json.dumps(doc).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _log(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _configure(stub):
    stub.add_response("update_function_configuration", {"FunctionName": "servebench-alexnet-Conv_1"},
                      {"FunctionName": "servebench-alexnet-Conv_1", "MemorySize": 2048, "Timeout": 300})
    stub.add_response("get_function", {"Configuration": {"LastUpdateStatus": "Successful", "State": "Active"}},
                      {"FunctionName": "servebench-alexnet-Conv_1"})


def test_invoke_sets_memory_then_reads_the_report_line():
    client = _client()
    inv = invokers.LambdaInvoker(cost.load("study-2019"), client=client)
    event = {"stage": "Conv_1", "input_key": "records/a", "output_key": "runs/x/Conv_1.npz"}
    report = ("START RequestId: 1\nREPORT RequestId: 1\tDuration: 1234.56 ms\tBilled Duration: 1300 ms\t"
              "Memory Size: 2048 MB\tMax Memory Used: 1500 MB\tInit Duration: 2100.00 ms\t\n")
    with Stubber(client) as stub:
        _configure(stub)
        stub.add_response("invoke", {"StatusCode": 200, "Payload": _body({"ok": True, "images": 100,
                                                                           "bytes_read": 10, "bytes_written": 20}),
                                     "LogResult": _log(report)},
                          {"FunctionName": "servebench-alexnet-Conv_1", "InvocationType": "RequestResponse",
                           "LogType": "Tail", "Payload": ANY})
        got = inv.invoke(SPEC, event)
        stub.assert_no_pending_responses()
    assert got.ok and got.cold and got.images == 100 and got.bytes_read == 10
    assert got.billed_ms == 1300 and got.peak_memory_mb == 1500 and got.init_s == pytest.approx(2.1)
    assert got.cost_usd == pytest.approx(2 * 1.3 * 0.0000166667 + 0.0000002)


@pytest.mark.parametrize("message,kind", [("Task timed out after 300.00 seconds", "timeout"),
                                          ("Runtime exited with error: signal: killed Runtime.ExitError",
                                           "out_of_memory")])
def test_function_errors_become_kinds(message, kind):
    client = _client()
    inv = invokers.LambdaInvoker(cost.load("study-2019"), client=client)
    with Stubber(client) as stub:
        _configure(stub)
        stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                     "Payload": _body({"errorMessage": message}), "LogResult": _log("")},
                          {"FunctionName": "servebench-alexnet-Conv_1", "InvocationType": "RequestResponse",
                           "LogType": "Tail", "Payload": ANY})
        got = inv.invoke(SPEC, {})
    assert not got.ok and got.kind == kind and message in got.error
