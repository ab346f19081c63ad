"""Make an image present on an engine before a container is made from it.

The local engine builds the agent image from its inputs when it is missing (a runner's
image must be built with ``crowdtui image build --runner``); a remote engine gets the local
one's copy, by id (``crowdtui.runtime.engines.copy_image``): no registry is needed.
"""

from __future__ import annotations

from crowdtui.engine_config import LOCAL
from crowdtui.roster import AgentDef
from crowdtui.runners import runner_for
from crowdtui.runtime.container_info import ContainerFailed


def ensure_present(local, engines, image: str, agent: AgentDef | None = None, engine: str = LOCAL,
                   progress=lambda line: None) -> None:
    """Make ``image`` present on ``engine``: a remote engine gets the local one's copy (by
    id, built there first when it is the agent image). ``local`` is the local engine's client,
    ``engines`` the runtime's ``Engines``."""
    from docker.errors import ImageNotFound

    if engine != LOCAL:
        from crowdtui.runtime.engines import copy_image

        client = engines.client(engine)
        try:
            client.images.get(image)
            return
        except ImageNotFound:
            pass
        ensure_present(local, engines, image, agent, LOCAL, progress)
        copy_image(local, client, image, progress)
        return
    try:
        local.images.get(image)
        return
    except ImageNotFound:
        pass
    from crowdtui.runtime.image import REPOSITORY, ensure_image

    if image.startswith(f"{REPOSITORY}:"):
        ensure_image(local, progress=progress)  # builds the current inputs' image
        try:
            local.images.get(image)  # that one, or :latest
            return
        except ImageNotFound:
            pass
    runner = runner_for(agent) if agent is not None and not agent.image else None
    if runner is not None and runner.packages:
        raise ContainerFailed(
            f"agent {agent.name}: the {runner.name} image {image} is not built; run "
            f"`crowdtui image build --runner {runner.name}`"
        )
    raise ContainerFailed(
        f"image {image} is not in the engine and cannot be pulled here; build or load it "
        "(`crowdtui image build` makes the default agent image)"
    )
