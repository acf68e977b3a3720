"""``system df -v``: docker's detailed space report — per image (with the size it shares with
other images through common layers and the size only it holds), per container, per volume, and
per build-cache record."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.cli.common import Context


def _layer_sharing(ctx: "Context", images: list[Any]) -> dict[str, tuple[int, int]]:
    """image ID -> (shared size, unique size). A layer is identified by its chain ID (the same
    diff on a different parent is a different layer, as docker counts it); shared means another
    image's chain contains it too."""
    from dockyard.snapshot.store import chain_id

    sizes = {s.chain_id: s.size for s in ctx.client.snapshots.list() if s.chain_id}  # what image.size sums
    chains: dict[str, list[tuple[str, int]]] = {}
    users: dict[str, int] = {}
    for image in images:
        diff_ids = (image.config_doc.get("rootfs") or {}).get("diff_ids") or []
        ids = [chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]
        layers = [(cid, sizes.get(cid, 0)) for cid in ids]
        chains[image.id] = layers
        for cid, _ in set(layers):
            users[cid] = users.get(cid, 0) + 1
    out = {}
    for image in images:
        layers = set(chains[image.id])
        shared = min(image.size, sum(size for cid, size in layers if users[cid] > 1))
        out[image.id] = (shared, image.size - shared)
    return out


def print_verbose(ctx: "Context", df: dict[str, Any]) -> None:
    from dockyard.cli.container import container_row
    from dockyard.cli.formatting import ago, format_table, human_size
    from dockyard.content.digest import short_id
    from dockyard.timeutil import parse_rfc3339

    images = ctx.client.images.list(all=True)
    sharing = _layer_sharing(ctx, images)
    in_use = {i["Id"]: i["Containers"] for i in df["Images"]}
    rows = []
    for image in images:
        shared, unique = sharing.get(image.id, (0, image.size))
        created = parse_rfc3339(image.created) if image.created else None
        for tag in image.repo_tags or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append({"Repository": repo, "Tag": t, "ID": short_id(image.id),
                         "Created": ago(created) if created else "N/A", "Size": human_size(image.size),
                         "Shared": human_size(shared, 4), "Unique": human_size(unique, 4),
                         "Containers": str(in_use.get(image.id, 0))})
    ctx.print("Images space usage:\n")
    ctx.out.write(format_table(rows, [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
                                      ("CREATED", "Created"), ("SIZE", "Size"), ("SHARED SIZE", "Shared"),
                                      ("UNIQUE SIZE", "Unique"), ("CONTAINERS", "Containers")]))

    cache: dict = {}
    ctrs = []
    for c in ctx.client.containers.list(all=True):
        row = container_row(ctx, c, True, cache, False)
        row["Size"] = human_size(c.size_rw() or 0)  # docker's df: the writable layer alone
        ctrs.append(row)
    ctx.print("\nContainers space usage:\n")
    ctx.out.write(format_table(ctrs, [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                                      ("LOCAL VOLUMES", "LocalVolumes"), ("SIZE", "Size"),
                                      ("CREATED", "RunningFor"), ("STATUS", "Status"), ("NAMES", "Names")]))

    vols = [{"Name": v["Name"], "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
             "Size": human_size(max(0, (v.get("UsageData") or {}).get("Size", 0)))} for v in df["Volumes"]]
    ctx.print("\nLocal Volumes space usage:\n")
    ctx.out.write(format_table(vols, [("VOLUME NAME", "Name"), ("LINKS", "Links"), ("SIZE", "Size")]))

    build = df["BuildCache"]
    ctx.print(f"\nBuild cache usage: {human_size(sum(b.get('size', 0) for b in build))}\n")
    records = [{"ID": b["id"][:12], "Type": b.get("type", "regular"), "Size": human_size(b.get("size", 0)),
                "Created": ago(b["created"]) if b.get("created") else "N/A",
                "LastUsed": ago(b["last_used"]) if b.get("last_used") else "N/A",
                "Usage": str(b.get("usage_count", 0)), "Shared": str(bool(b.get("shared"))).lower()}
               for b in build]
    ctx.out.write(format_table(records, [("CACHE ID", "ID"), ("CACHE TYPE", "Type"), ("SIZE", "Size"),
                                         ("CREATED", "Created"), ("LAST USED", "LastUsed"), ("USAGE", "Usage"),
                                         ("SHARED", "Shared")]))
