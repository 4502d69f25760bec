import uuid

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from schemas import topics


# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert topics.murmur2(data) == expected


def test_partition_matches_aiokafka_default_partitioner() -> None:
    for _ in range(200):
        key = topics.server_key(uuid.uuid4())
        expected = (aiokafka_murmur2(key) & 0x7FFFFFFF) % 12
        assert topics.partition_for_key(key, 12) == expected


def test_every_topic_name_is_versioned_and_unique() -> None:
    names = [spec.base for spec in topics.ALL_TOPICS]
    assert len(set(names)) == len(names)
    for name in names:
        assert name.startswith("fleetpulse.")
        assert name.rsplit(".", 1)[1].startswith("v")


def test_prefix_namespaces_a_topic() -> None:
    assert topics.METRICS.name("test-1.") == "test-1.fleetpulse.metrics.v1"
    assert topics.ALERT_RULES.cleanup is topics.Cleanup.COMPACT
