"""NCRONTAB next occurrences. Cases marked "NCrontab:" are copied from NCrontab's own test suite
(atifaziz/NCrontab, NCrontab.Tests/CrontabScheduleTests.cs), the library the Functions host uses."""

from __future__ import annotations

from datetime import datetime

import pytest

from devstack.runner.ncrontab import CronSchedule, CrontabError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("base", "expression", "expected"), [
    # NCrontab: seconds
    ("2003-01-01 00:00:00", "45 * * * * *", "2003-01-01 00:00:45"),
    ("2003-01-01 00:00:49", "45-47,48,49 * * * * *", "2003-01-01 00:01:45"),
    ("2003-01-01 00:00:57", "2/5 * * * * *", "2003-01-01 00:01:02"),
    # NCrontab issue #90 cases
    ("2021-02-24 09:50:35", "* 0-1 10 * * *", "2021-02-24 10:00:00"),
    ("2021-02-24 09:50:35", "* 55 * * * *", "2021-02-24 09:55:00"),
    # NCrontab: minutes and hours
    ("2003-01-01 00:49:30", "6 45-47,48,49 * * * *", "2003-01-01 01:45:06"),
    ("2003-01-01 00:57:30", "9 2/5 * * * *", "2003-01-01 01:02:09"),
    ("2000-01-01 14:40:00", "0 40 14/1 * * *", "2000-01-01 15:40:00"),
    # NCrontab: days of month, 30/31 handling, leap years
    ("2003-01-07 00:00:00", "0 30 * 1 * *", "2003-02-01 00:30:00"),
    ("2000-01-31 00:00:00", "0 0 0 15,30,31 * *", "2000-02-15 00:00:00"),
    ("2000-04-15 00:00:00", "0 0 0 15,30,31 * *", "2000-04-30 00:00:00"),
    ("2000-02-29 12:01:00", "0 1 12 29 2 *", "2004-02-29 12:01:00"),
    ("2002-07-01 05:00:00", "0 10 * * February,April-Jun *", "2003-02-01 00:10:00"),
    ("1988-03-11 14:23:00", "0 20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
     "1988-03-11 15:20:00"),
    # NCrontab: days of week (Sunday is 0, names are prefixes)
    ("2003-06-26 10:00:00", "0 30 6 * * sunday", "2003-06-29 06:30:00"),
    ("2003-06-24 12:01:00", "0 1 12 * * 2", "2003-07-01 12:01:00"),
    # NCrontab: day of month AND day of week ("45 16 1 * Mon": the 1st of a month that is a Monday)
    ("2003-01-01 12:00:00", "0 45 16 1 * Mon", "2003-09-01 16:45:00"),
    ("2003-09-01 23:45:00", "0 45 16 1 * Mon", "2003-12-01 16:45:00"),
    # Friday the 13th only (Vixie cron would OR the fields and fire on every 13th and every Friday)
    ("2026-01-01 00:00:00", "0 0 0 13 * Fri", "2026-02-13 00:00:00"),
    # the project's own schedules
    ("2026-11-25 19:02:30", "0 */5 * * * *", "2026-11-25 19:05:00"),
    ("2026-11-25 19:59:59.900", "0 */15 * * * *", "2026-11-25 20:00:00"),
])
def test_next_occurrence(base, expression, expected):
    assert CronSchedule.parse(expression).next_after(at(base)) == at(expected)


def test_next_is_strictly_after_base_at_whole_seconds():
    every_second = CronSchedule.parse("* * * * * *")
    assert every_second.next_after(at("2003-01-01 00:00:00")) == at("2003-01-01 00:00:01")
    assert every_second.next_after(at("2003-01-01 00:00:00.999")) == at("2003-01-01 00:00:01")


def test_reversed_range_is_swapped():
    assert CronSchedule.parse("0 0 5-3 * * *").hours == frozenset({3, 4, 5})


def test_impossible_date_gives_none_quickly():
    # NCrontab: "* * * 31 Feb *" must not loop forever
    assert CronSchedule.parse("* * * 31 Feb *").next_after(at("2001-01-01 00:00:00")) is None


def test_rare_schedule_is_found():
    # NCrontab: "0 0 29 Feb Mon" after 9000-01-01 is 9008-02-29
    assert CronSchedule.parse("0 0 0 29 Feb Mon").next_after(at("9000-01-01 00:00:00")) == at("9008-02-29 00:00:00")


@pytest.mark.parametrize("expression", [
    "* * * * *",              # five fields: the host needs six
    "bad * * * * *",
    "* * * * * mon,bad,wed",
    "* * 1,2,3,456,7,8,9 * * *",
    "* * 1,Z,3,4 * * *",
    "* * 1/Z * * *",
    "* * 3-l2 * * *",
    "* * * * * 7",            # NCrontab's day of week is 0-6
])
def test_bad_expressions_are_rejected(expression):
    with pytest.raises(CrontabError):
        CronSchedule.parse(expression)


def test_next_occurrences_lists_in_order():
    got = CronSchedule.parse("*/20 * * * * *").next_occurrences(at("2026-01-01 00:00:00"), 4)
    assert got == [at("2026-01-01 00:00:20"), at("2026-01-01 00:00:40"), at("2026-01-01 00:01:00"),
                   at("2026-01-01 00:01:20")]
