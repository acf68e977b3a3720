"""Retention policies: keep the last N tags, keep tags matching patterns, expire untagged manifests.

A plan is computed first (and is all a dry run shows), then applied through the same store calls
the API uses, so immutable tags stay protected here too: they are always kept, whatever the policy.
Manifests still needed are never removed: those a kept tag points to, children of a kept index,
and referrers (signatures, SBOMs) of a kept manifest. Blobs are freed by the next GC.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.registry import manifests as mf
from dockyard.registry.auth import AccessPolicy
from dockyard.registry.config import Config
from dockyard.registry.errors import RegistryError
from dockyard.registry.names import glob_to_regex
from dockyard.registry.store import RegistryStore, blob_key


@dataclass(frozen=True)
class RetentionAction:
    repository: str
    kind: str          # "tag" or "manifest"
    reference: str     # tag name or digest
    reason: str


def plan(store: RegistryStore, config: Config, now: float | None = None) -> list[RetentionAction]:
    now = now or time.time()
    actions: list[RetentionAction] = []
    for repo in store.repositories():
        rule = config.rule_for(repo)
        if rule is None or rule.retention is None:
            continue
        pol = rule.retention
        keep_patterns = [glob_to_regex(p) for p in pol.keep_tags]
        tags = store.tags(repo)
        removed_tags = []
        if pol.keep_last is not None:
            protected = [t for t in tags if any(rx.match(t.name) for rx in rule.tag_regexes)
                         or any(rx.match(t.name) for rx in keep_patterns)]
            others = sorted((t for t in tags if t not in protected), key=lambda t: (t.mtime, t.name),
                            reverse=True)
            removed_tags = others[pol.keep_last:]
            for t in removed_tags:
                actions.append(RetentionAction(repo, "tag", t.name,
                                               f"beyond the {pol.keep_last} most recent tags"))
        remaining = [t for t in tags if t not in removed_tags]
        orphaned = {t.digest for t in removed_tags} - {t.digest for t in remaining}
        manifests = {m.digest: m for m in store.manifests(repo)}
        cutoff = now - pol.untagged_older_than if pol.untagged_older_than is not None else None
        roots = {t.digest for t in remaining}
        for m in manifests.values():
            if m.digest in roots or m.digest in orphaned:
                continue
            if cutoff is None or m.mtime > cutoff:
                roots.add(m.digest)
        kept = _closure(store, repo, roots, manifests)
        for digest in sorted(set(manifests) - kept):
            if digest in orphaned:
                reason = "its tags were removed by keep_last"
            else:
                reason = "untagged for longer than the policy allows"
            actions.append(RetentionAction(repo, "manifest", digest, reason))
    return actions


def _closure(store: RegistryStore, repo: str, roots: set[str], manifests: dict) -> set[str]:
    """Roots plus index children and referrers of anything kept, to a fixed point."""
    kept = set(roots)
    frontier = list(roots)
    while frontier:
        digest = frontier.pop()
        info = manifests.get(digest)
        if info is not None and info.media_type in mf.INDEX_TYPES:
            data = store.driver.get(blob_key(digest))
            for child in mf.references(data or b""):
                if child in manifests and child not in kept:
                    kept.add(child)
                    frontier.append(child)
        for m in manifests.values():
            if m.subject == digest and m.digest not in kept:
                kept.add(m.digest)
                frontier.append(m.digest)
    return kept


def apply(store: RegistryStore, config: Config, actions: list[RetentionAction]) -> list[RetentionAction]:
    """Carry out a plan; returns the actions that were skipped (changed concurrently, or protected)."""
    policy = AccessPolicy(config)
    skipped = []
    for a in actions:
        protect = lambda tag, repo=a.repository: policy.is_immutable(repo, tag)
        try:
            if a.kind == "tag":
                store.delete_tag(a.repository, a.reference, protect)
            else:
                store.delete_manifest(a.repository, a.reference, protect)
        except RegistryError:  # a concurrent push or delete got there first
            skipped.append(a)
    return skipped
