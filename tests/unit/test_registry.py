"""The stream registry is the one list of streams: discovery, the field catalog, the OpenAPI
extract and the README's streams table all come from it."""

from __future__ import annotations

from tap_pipedrive import schemas
from tap_pipedrive.http.paging import PagingKind
from tap_pipedrive.streams import STREAMS, Replication, endpoints, field_endpoints, markdown_table
from tap_pipedrive.streams.deals import DealChildStream, DealsStream
from tap_pipedrive.tap import TapPipedrive
from tests import session
from tests.helpers import ROOT


def test_stream_names_are_unique_and_every_endpoint_is_in_the_extract():
    names = [s.name for s in STREAMS]
    assert len(names) == len(set(names))
    extracted = set(schemas.openapi()["endpoints"])
    assert {f"{v} {p}" for v, p in endpoints()} <= extracted


def test_the_field_catalog_reads_the_endpoints_of_the_fields_streams():
    catalog = field_endpoints()
    assert set(catalog) == {"deal", "person", "organization", "product", "activity", "note", "project"}
    assert catalog["note"].version == "v1"
    assert catalog["note"].paging is PagingKind.NONE
    assert catalog["deal"].path == "/dealFields"


def test_every_custom_field_entity_has_a_field_endpoint():
    catalog = field_endpoints()
    assert {s.custom_fields for s in STREAMS if s.custom_fields} <= set(catalog)


def test_incremental_rows_sort_by_update_time_oldest_first():
    for s in STREAMS:
        if s.replication is Replication.INCREMENTAL:
            assert s.replication_key == "update_time", s.name
            assert s.time_filter == "updated_since", s.name
            assert "update_time" in str(s.query), s.name


def test_discovery_builds_one_stream_per_row_with_its_keys():
    tap = TapPipedrive(config=session.config(), parse_env_config=False, setup_mapper=False)
    streams = tap.streams
    assert set(streams) == {s.name for s in STREAMS}
    for row in STREAMS:
        stream = streams[row.name]
        assert isinstance(stream, row.kind)
        assert tuple(stream.primary_keys) == row.keys
        assert stream.replication_key == row.replication_key


def test_deals_and_archived_deals_are_one_class_and_both_feed_deal_products():
    tap = TapPipedrive(config=session.config(), parse_env_config=False, setup_mapper=False)
    deals, archived, products = (tap.streams[n] for n in ("deals", "archived_deals", "deal_products"))
    assert type(deals) is type(archived) is DealsStream
    assert isinstance(products, DealChildStream)
    assert products in deals.child_streams
    assert products in archived.child_streams


def test_the_readme_streams_table_is_the_registrys():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README streams table is stale: run python scripts/readme_tables.py"
