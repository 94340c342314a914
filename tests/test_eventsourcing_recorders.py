"""The eventsourcing library's own recorder and factory test cases, run on logmq."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from logmq.eventsourcing import (
    LogMQAggregateRecorder,
    LogMQApplicationRecorder,
    LogMQFactory,
    LogMQProcessRecorder,
    LogMQTrackingRecorder,
)


class WithLogMQ:
    """A fresh data directory and factory per test; closed (and removed) afterwards."""

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self._dir = tempfile.mkdtemp(prefix="logmq-es-")
        self._factories: list[LogMQFactory] = []

    def tearDown(self) -> None:
        for f in self._factories:
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        super().tearDown()  # type: ignore[misc]

    def factory(self, **env: str) -> LogMQFactory:
        f = LogMQFactory(Environment("TestApp", {"LOGMQ_DATA": self._dir, **env}))
        self._factories.append(f)
        return f


class WithTextOriginatorID:
    def new_originator_id(self) -> UUID | str:
        return "test-" + str(uuid4())


class TestLogMQAggregateRecorder(WithLogMQ, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()


class TestLogMQAggregateRecorderTextIDs(WithTextOriginatorID, TestLogMQAggregateRecorder):
    pass


class TestLogMQApplicationRecorder(WithLogMQ, ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestLogMQApplicationRecorderTextIDs(WithTextOriginatorID, TestLogMQApplicationRecorder):
    pass


class TestLogMQTrackingRecorder(WithLogMQ, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class TestLogMQProcessRecorder(WithLogMQ, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class TestLogMQProcessRecorderTextIDs(WithTextOriginatorID, TestLogMQProcessRecorder):
    pass


class TestLogMQNonInterleavingNotificationIDs(WithLogMQ, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class MyTrackingRecorder(LogMQTrackingRecorder):
    pass


class TestLogMQInfrastructureFactory(InfrastructureFactoryTestCase[LogMQFactory]):
    def expected_factory_class(self) -> type[LogMQFactory]:
        return LogMQFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return LogMQAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return LogMQApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return LogMQTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return MyTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return LogMQProcessRecorder

    def setUp(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="logmq-es-")
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = "logmq.eventsourcing"
        self.env[LogMQFactory.LOGMQ_DATA] = self._dir
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        shutil.rmtree(self._dir, ignore_errors=True)
        for key in ("LOGMQ_DATA",):
            os.environ.pop(key, None)


del AggregateRecorderTestCase
del ApplicationRecorderTestCase
del TrackingRecorderTestCase
del ProcessRecorderTestCase
del NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
