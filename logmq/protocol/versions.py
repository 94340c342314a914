"""The API versions ``logmq serve`` advertises in ApiVersions and decodes: one line per API.

Its own module because every surface that adds an API adds its line here, and the table is
read by the codec, the server and the tests that compare it with Apache Kafka 4.4.0's.
"""

from __future__ import annotations

__all__ = ["SUPPORTED_VERSIONS"]

#: What the server advertises (and decodes): the versions whose fields the handlers honour.
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    # maxima: what Apache Kafka 4.4.0 advertises (tests/test_flexible_versions.py keeps the
    # table); minima: Kafka 4's removals (KIP-896), except where noted
    0: (3, 13),  # Produce (Kafka advertises 0-2 for old librdkafka and refuses them; v13 ids)
    1: (4, 18),  # Fetch (v12 flexible + diverging epoch, v13 topic ids)
    2: (1, 11),  # ListOffsets (v7 max-timestamp, v8 earliest-local, v9 latest-tiered, v11 -6)
    3: (0, 13),  # Metadata (v10 topic ids, v12 topics by id, v13 top-level error)
    8: (2, 10),  # OffsetCommit (v10 topic ids)
    9: (1, 10),  # OffsetFetch (v8 several groups, v10 topic ids)
    10: (0, 6),  # FindCoordinator (v4 batched keys)
    11: (0, 9),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 5),  # LeaveGroup
    14: (0, 5),  # SyncGroup (v5 protocol type and name)
    15: (0, 6),  # DescribeGroups (v6 GROUP_ID_NOT_FOUND)
    16: (0, 5),  # ListGroups (v4 states filter, v5 types filter)
    18: (0, 5),  # ApiVersions (v3 client software, v5 cluster/node check)
    19: (2, 7),  # CreateTopics (Kafka 4 removed v0-1, KIP-896; v5 configs, v7 topic id)
    20: (1, 6),  # DeleteTopics (v0 removed; v6 by topic id)
    21: (0, 2),  # DeleteRecords
    22: (0, 5),  # InitProducerId (v6 is 2PC, which Kafka 4.4 does not advertise)
    32: (1, 4),  # DescribeConfigs (v0 removed)
    # the admin surface (logmq/server/admin.py)
    33: (0, 2),  # AlterConfigs
    35: (1, 5),  # DescribeLogDirs (v0 removed)
    37: (0, 3),  # CreatePartitions
    42: (0, 3),  # DeleteGroups
    43: (0, 2),  # ElectLeaders
    44: (0, 1),  # IncrementalAlterConfigs
    47: (0, 0),  # OffsetDelete
    60: (0, 2),  # DescribeCluster
    61: (0, 0),  # DescribeProducers
    75: (0, 0),  # DescribeTopicPartitions
    68: (0, 1),  # ConsumerGroupHeartbeat (KIP-848, logmq/server/kip848.py)
    69: (0, 1),  # ConsumerGroupDescribe
    76: (1, 1), 77: (1, 1), 78: (1, 2), 79: (1, 2),  # share groups (server/share.py)
    90: (0, 1), 91: (0, 0), 92: (0, 0),  # share-group offsets (server/share_admin.py)
    # security (logmq/server/acl_handlers.py, logmq/server/quotas.py)
    29: (1, 3),  # DescribeAcls
    30: (1, 3),  # CreateAcls
    31: (1, 3),  # DeleteAcls
    48: (0, 1),  # DescribeClientQuotas
    49: (0, 1),  # AlterClientQuotas
    # security (logmq/server/sasl.py, logmq/server/scram_admin.py)
    17: (0, 1),  # SaslHandshake
    36: (0, 2),  # SaslAuthenticate
    50: (0, 0),  # DescribeUserScramCredentials
    51: (0, 0),  # AlterUserScramCredentials
    # transactions (logmq/server/txn.py; Kafka's transaction version 1, no KIP-890 v2)
    24: (0, 3), 25: (0, 3), 26: (0, 4), 27: (1, 1), 28: (0, 3), 65: (0, 0), 66: (0, 2),
}
