"""Writes an env's JUnit file from its results journal when the suite process died, timed out or was stopped.

The file has the same shape as pytest's xunit2 output (one `<testsuite>` with the env's properties), so the
report reads it like any other: finished checks keep their outcome, the check that was running is
`<error type="crashed">` with the cause and the last output lines, and checks never reached are
`<skipped type="notrun">`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from conformance import output
from conformance.protocol import journal, outcomes, properties


@dataclass
class Death:
    """Why the suite process stopped early, in words for the report."""

    cause: str  # e.g. "killed by signal SIGSEGV", "global time limit of 600 s reached", "interrupted (SIGTERM)"
    output_tail: str = ""


def _case(parent: ET.Element, res: journal.Result) -> ET.Element:
    return ET.SubElement(parent, "testcase", classname=res.classname, name=res.name, time=f"{res.duration:.3f}")


def build(data: journal.JournalData, death: Death, suite_name: str) -> ET.ElementTree:
    root = ET.Element("testsuites", name="conformance")
    suite = ET.SubElement(root, "testsuite", name=suite_name)
    props = ET.SubElement(suite, "properties")
    written = {**data.properties, properties.RUN_STATUS: death.cause}
    for key, value in written.items():
        ET.SubElement(props, "property", name=key, value=value)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    results = list(data.collected)
    if data.running and data.running not in {r.nodeid for r in results}:
        results.append(journal.Result(data.running, "", data.running, started=True))
    if not results:
        # Died before collecting anything: still leave one row saying so, never an empty "green" suite.
        results = [journal.Result("<session>", "conformance", "suite_startup", started=True)]
    for res in results:
        counts["tests"] += 1
        total_time += res.duration
        case = _case(suite, res)
        if res.nodeid == data.running or (res.started and not res.finished and not res.outcome) \
                or res.nodeid == "<session>":
            counts["errors"] += 1
            el = ET.SubElement(case, "error", type=outcomes.CRASHED, message=outcomes.crashed(death.cause))
            el.text = f"{death.cause} while this check was running.\n\nLast output:\n{death.output_tail}"
        elif not res.outcome:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", type=outcomes.NOT_RUN,
                          message=outcomes.not_run(f"the suite stopped early ({death.cause})"))
        elif res.outcome == "failed":
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=res.message).text = res.detail
        elif res.outcome == "error":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=res.message).text = res.detail
        elif res.outcome == "xfail":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", type="pytest.xfail", message=res.message)
        elif res.outcome == "skipped":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", type="pytest.skip", message=res.message).text = res.detail
    for key, count in counts.items():
        suite.set(key, str(count))
    suite.set("time", f"{total_time:.3f}")
    if properties.START_TIME in data.properties:
        suite.set("timestamp", data.properties[properties.START_TIME])
    return ET.ElementTree(root)


def write(data: journal.JournalData, death: Death, suite_name: str, path: str) -> None:
    tree = build(data, death, suite_name)
    output.write_output(path, lambda stream: tree.write(stream, encoding="unicode", xml_declaration=True))
