"""`git ls-remote` output is outside text: any of it parses (or is ignored) without a
traceback or a hang, and only well-formed `<object id>\\t<ref>` lines are ever read as refs."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.fetch.git_refs import candidate_refs, parse_ls_remote, pick
from tests.fixtures.capped import run_capped

SHA = "0123456789abcdef0123456789abcdef01234567"
WELL_FORMED = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})\t(refs/\S+)")


def test_a_real_listing_with_noise_and_a_peeled_tag() -> None:
    text = (
        "warning: redirecting to https://example.invalid/zfs.git/\n"
        f"{SHA}\trefs/heads/master\r\n"
        f"{'1' * 40}\trefs/tags/zfs-2.3.4\n"
        f"{'2' * 40}\trefs/tags/zfs-2.3.4^{{}}\n"
        f"{'3' * 40}\trefs/pull/12345/head\n"
        "not a ref line\n"
        f"{'4' * 39}\trefs/heads/short\n"
    )
    refs = parse_ls_remote(text)
    assert refs == {
        "refs/heads/master": SHA,
        "refs/tags/zfs-2.3.4": "1" * 40,
        "refs/tags/zfs-2.3.4^{}": "2" * 40,
        "refs/pull/12345/head": "3" * 40,
    }
    tag = pick("zfs-2.3.4", refs)
    assert tag is not None and tag.commit == "2" * 40  # the commit, not the tag object
    assert pick("pr-12345", refs) is not None
    assert pick("pr-1", refs) is None


def test_only_pr_n_names_reach_pull_request_refs() -> None:
    assert candidate_refs("pr-7")[-1] == "refs/pull/7/head"
    for name in ("pr-", "pr-0", "pr-01", "pr-7a", "PR-7", "pr-12345678901"):
        assert not any(ref.startswith("refs/pull/") for ref in candidate_refs(name)), name


def parse_and_check(text: str, name: str) -> None:
    refs = parse_ls_remote(text)
    for ref, oid in refs.items():
        assert WELL_FORMED.fullmatch(f"{oid}\t{ref}")
    found = pick(name, refs)
    if found is not None:
        assert found.ref in candidate_refs(name)


LINE = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda oid, ref: f"{oid}\t{ref}",
        st.text("0123456789abcdefABCDEF", min_size=38, max_size=66),
        st.text(min_size=0, max_size=60).map(lambda tail: "refs/" + tail),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LINE, max_size=40), st.sampled_from(["master", "pr-12345", "zfs-2.3.4", "x"]))
def test_any_listing_parses_without_a_traceback(lines: list[str], name: str) -> None:
    run_capped(parse_and_check, "\n".join(lines), name)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=200_000))
def test_a_huge_listing_is_read_in_bounded_time(count: int) -> None:
    text = "\n".join(f"{SHA}\trefs/pull/{i}/head" for i in range(count))
    run_capped(parse_and_check, text, "pr-1")
