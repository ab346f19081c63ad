"""The console's agent list says where each agent runs, and when its engine does not answer."""

from crowdtui.runtime.container_info import ContainerInfo
from crowdtui.tui.crew import merge_rows


class A:
    def __init__(self, name, state="running"):
        self.name, self.path, self.tier, self.parent = name, name, 0, None
        self.state, self.status, self.status_note = state, "", ""


def _info(name, engine):
    return ContainerInfo(name=name, container_id=f"{name}0000", state="running", exit_code=None,
                         oom_killed=False, image="i", started_at=None, engine=engine)


def test_rows_name_the_engine_and_an_unreachable_one():
    rows = {r.name: r for r in merge_rows(
        [A("far1"), A("near"), A("gone", state="unreachable")],
        containers={"far1": _info("far1", "far"), "near": _info("near", "local")})}
    assert (rows["far1"].engine, rows["far1"].note, rows["far1"].state) == ("far", "on far", "running")
    assert (rows["near"].engine, rows["near"].note) == ("local", "")
    assert rows["gone"].state == "unreachable"
