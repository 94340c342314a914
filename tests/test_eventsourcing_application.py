"""The eventsourcing library's own application test cases, run on logmq."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from unittest import TestCase
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.tests.application import ApplicationTestCase, ExampleApplicationTestCase

from logmq.eventsourcing import LogMQDatastore, LogMQFactory


class WithLogMQ(TestCase):
    """A fresh LOGMQ_DATA per test, as the library's SQLite tests give a fresh database."""

    expected_factory_topic = "logmq.eventsourcing:LogMQFactory"

    def setUp(self) -> None:
        super().setUp()
        self._dir = tempfile.mkdtemp(prefix="logmq-es-app-")
        os.environ["PERSISTENCE_MODULE"] = "logmq.eventsourcing"
        os.environ["LOGMQ_DATA"] = self._dir

    def tearDown(self) -> None:
        del os.environ["PERSISTENCE_MODULE"]
        del os.environ["LOGMQ_DATA"]
        super().tearDown()
        LogMQDatastore.close_all(self._dir)  # the library's tests leave applications open
        shutil.rmtree(self._dir, ignore_errors=True)


class TestApplicationWithLogMQ(WithLogMQ, ApplicationTestCase):
    pass


class TestExampleApplicationWithLogMQ(WithLogMQ, ExampleApplicationTestCase):
    pass


class TestSharedLog(WithLogMQ):
    def test_several_factories_share_one_open_log(self) -> None:
        class One(Application[UUID]):
            pass

        class Two(Application[UUID]):
            pass

        app1, app2 = One(), Two()
        try:
            f1, f2 = app1.factory, app2.factory
            assert isinstance(f1, LogMQFactory) and isinstance(f2, LogMQFactory)
            self.assertIs(f1.datastore.broker, f2.datastore.broker)
            a = Aggregate()
            app1.save(a)
            self.assertEqual(app1.repository.get(a.id).id, a.id)
            self.assertEqual(app2.recorder.max_notification_id(), None)
            broker = f1.datastore.broker
        finally:
            app1.close()
        self.assertFalse(broker.closed)  # app2 still uses it
        app2.close()
        self.assertTrue(broker.closed)
        self.assertNotIn(os.path.realpath(self._dir), LogMQDatastore._open)

    def test_unclosed_application_releases_the_log_when_collected(self) -> None:
        app = Application[UUID]()
        app.save(Aggregate())
        broker = app.factory.datastore.broker  # type: ignore[attr-defined]
        del app
        deadline = time.monotonic() + 10
        while not broker.closed and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.01)  # polling the condition, bounded by the deadline
        self.assertTrue(broker.closed)

    def test_events_survive_reopen(self) -> None:
        app = Application[UUID]()
        a = Aggregate()
        a.trigger_event(Aggregate.Event)
        app.save(a)
        app.close()
        app = Application[UUID]()
        try:
            self.assertEqual(app.repository.get(a.id).version, 2)
            self.assertEqual(app.recorder.max_notification_id(), 2)
        finally:
            app.close()


del ApplicationTestCase
del ExampleApplicationTestCase
