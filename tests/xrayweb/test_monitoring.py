"""The drift monitor (issue 29): its statistics against scipy's, its rules on streams of
predictions, the alarm's life (opened and audited once, closed and audited), and where it
shows: the agreement page, `manage.py monitor`, /metrics."""

import random
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats

from classifier import DEFAULT_BUNDLE, read_metadata
from tests.factories import ModelVersionFactory, PredictionFactory, StudyFactory
from xrayweb.audit.models import AuditEvent
from xrayweb.review.drift import (
    chi2_sf,
    drop_test,
    kappa_interval,
    ks_against_reference,
    mix_test,
    reference_cdf,
)
from xrayweb.review.models import DriftAlarm, DriftSignal, DriftStatus, DriftWeek
from xrayweb.review.monitoring import Rules, monitor_check, monitor_report
from xrayweb.studies.models import ReviewState

CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]
MIX = {"covid19": 0.25, "bacterial_pneumonia": 0.2, "viral_pneumonia": 0.15, "normal": 0.4}


def _reference(seed: int = 0) -> dict:
    """A reference like the shipped bundle's: training distances log-normal, validation films
    a little further (about 20% beyond the training 95th percentile)."""
    rng = np.random.default_rng(seed)
    train = rng.lognormal(7.0, 0.4, 1400)
    val = rng.lognormal(7.25, 0.4, 330)
    q = np.linspace(0, 1, 101)
    p95 = float(np.quantile(train, 0.95))
    return {
        "films": {"train": 1400, "val": 330},
        "distance_quantiles": [float(x) for x in np.quantile(train, q)],
        "val_distance_quantiles": [float(x) for x in np.quantile(val, q)],
        "distance_p95": p95,
        "val_beyond_p95": float(np.mean(val > p95)),
        "val_mix": MIX,
        "val_confidence": 0.8,
        "val_agreement": 0.8,
        "val_agreement_films": 300,
    }


# --- the statistics ---------------------------------------------------------------------


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 9, 12])
def test_chi2_survival_matches_scipy(df):
    for x in (0.1, 1.0, 3.0, 7.5, 15.0, 40.0):
        assert chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-15)


def test_ks_against_quantiles_matches_scipys_two_sample_test():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 2000)
    quantiles = [float(x) for x in np.quantile(reference, np.linspace(0, 1, 101))]
    for shift in (0.0, 0.3, 0.8):
        sample = rng.normal(shift, 1, 80)
        d, p = ks_against_reference(list(sample), quantiles, 2000)
        expected = stats.ks_2samp(sample, reference, method="asymp")
        assert d == pytest.approx(expected.statistic, abs=0.02)
        assert p == pytest.approx(expected.pvalue, rel=0.35, abs=0.01)
    assert reference_cdf(quantiles, quantiles[0] - 1) == 0.0
    assert reference_cdf(quantiles, quantiles[-1]) == 1.0
    assert reference_cdf(quantiles, quantiles[50]) == pytest.approx(0.5)


def test_mix_test_is_the_chi_square_goodness_of_fit():
    counts = {"covid19": 30, "bacterial_pneumonia": 10, "viral_pneumonia": 10, "normal": 30}
    tvd, p = mix_test(counts, MIX)
    expected = stats.chisquare([counts[c] for c in MIX], [MIX[c] * 80 for c in MIX])
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert tvd == pytest.approx(sum(abs(counts[c] / 80 - MIX[c]) for c in MIX) / 2)
    # A class the validation films never got is pooled, not divided by zero.
    tvd, p = mix_test({"normal": 10, "other": 10}, {"normal": 1.0})
    assert tvd == pytest.approx(0.5) and 0 <= p <= 1


def test_drop_test_and_kappa_interval():
    assert drop_test((80, 100), (40, 80)) < 0.001
    assert drop_test((80, 100), (64, 80)) > 0.4
    assert drop_test((0, 0), (1, 2)) == 1.0
    kappa, (low, high) = kappa_interval([[40, 10], [5, 45]])
    assert kappa == pytest.approx(0.7)
    assert low < kappa < high and high - low < 0.4


# --- the rules on streams ---------------------------------------------------------------


@pytest.fixture
def version(db):
    return ModelVersionFactory(name="v3", classes=CLASSES, drift_reference=_reference())


def _stream(version, staff, site, n, *, start, distances, labels=None, truths=None, conf=0.8):
    """``n`` predictions at ``site`` an hour apart from ``start``: distances drawn from
    ``distances``, labels drawn from the validation mix unless given; read with ``truths``."""
    rng = random.Random(hash((site, n, start.isoformat())) & 0xFFFF)
    predictions = []
    for i in range(n):
        label = labels[i] if labels else rng.choices(list(MIX), weights=list(MIX.values()))[0]
        study = StudyFactory(uploaded_by=staff, site=site)
        p = PredictionFactory(
            study=study,
            model_version=version,
            probabilities={c: conf if c == label else (1 - conf) / 3 for c in CLASSES},
            feature_distance=distances(rng),
            assessable=True,
        )
        fields = {"created_at": start + timedelta(hours=i), "current_prediction": p}
        if truths:
            fields |= {"review_state": ReviewState.FINAL, "final_label": truths[i]}
        type(study).objects.filter(pk=study.pk).update(**fields)
        predictions.append(p)
    return predictions


def _calm(version):
    ref = version.drift_reference
    return lambda rng: ref["val_distance_quantiles"][rng.randrange(101)]


def _far(version):
    return lambda rng: version.drift_reference["distance_p95"] * (1.2 + rng.random())


def test_a_site_whose_films_move_away_raises_one_alarm_audited_once(version, staff):
    start = timezone.now() - timedelta(days=10)
    _stream(version, staff, "A", 60, start=start, distances=_calm(version))
    _stream(version, staff, "B", 60, start=start, distances=_far(version))
    assert monitor_check() == {"groups": 2, "opened": 1, "closed": 0}
    alarm = DriftAlarm.objects.get()
    assert (alarm.site, alarm.signal, alarm.cleared_at) == ("B", DriftSignal.DISTANCE, None)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.MONITOR_ALARM)
    assert events.count() == 1
    assert events[0].actor is None and events[0].detail["site"] == "B"
    assert events[0].detail["signal"] == "distance" and events[0].detail["films"] == 60
    # A second check with the alarm still firing opens nothing and audits nothing new.
    assert monitor_check()["opened"] == 0
    assert events.count() == 1 and DriftAlarm.objects.count() == 1
    sentence = monitor_report()["sentences"][0]
    assert sentence.startswith("Site B (model v3): since ")
    assert "100% of films are further from the training films than 95% of them were" in sentence
    status = DriftStatus.objects.get(site="A", signal=DriftSignal.DISTANCE)
    assert not status.firing and status.films == 60 and status.value < 0.35


def test_the_alarm_closes_when_the_films_come_back_and_that_is_audited(version, staff):
    start = timezone.now() - timedelta(days=20)
    _stream(version, staff, "B", 60, start=start, distances=_far(version))
    monitor_check()
    assert DriftAlarm.objects.filter(cleared_at__isnull=True).count() == 1
    _stream(version, staff, "B", 80, start=start + timedelta(days=5), distances=_calm(version))
    assert monitor_check()["closed"] == 1
    assert DriftAlarm.objects.get().cleared_at is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MONITOR_CLEARED).count() == 1
    assert monitor_report()["sentences"] == []


def test_too_few_films_give_no_verdict_and_leave_an_open_alarm_as_it_was(version, staff):
    _stream(version, staff, "B", 20, start=timezone.now(), distances=_far(version))
    monitor_check()
    status = DriftStatus.objects.get(signal=DriftSignal.DISTANCE)
    assert status.value is None and not status.firing and status.films == 20
    assert not DriftAlarm.objects.exists()


def test_mix_confidence_and_agreement_rules(version, staff, client, radiologist):
    start = timezone.now() - timedelta(days=3)
    n = 80
    # Site C: every film called covid19 at 0.5 confidence, and the readers say normal.
    _stream(
        version,
        staff,
        "C",
        n,
        start=start,
        distances=_calm(version),
        labels=["covid19"] * n,
        truths=["normal"] * n,
        conf=0.5,
    )
    monitor_check()
    firing = set(DriftStatus.objects.filter(site="C", firing=True).values_list("signal", flat=True))
    assert firing == {DriftSignal.MIX, DriftSignal.CONFIDENCE, DriftSignal.AGREEMENT}
    agreement = DriftStatus.objects.get(site="C", signal=DriftSignal.AGREEMENT)
    assert agreement.value == 0.0 and agreement.baseline == pytest.approx(0.8)
    assert agreement.detail["baseline_from"] == "validation films"
    sentence = monitor_report()["sentences"][0]
    assert "the prediction mix is 75% away from the validation films' (covid19: 100%" in sentence
    assert "the mean confidence fell from 0.80 to 0.50" in sentence
    assert "agreement fell from 0.80 (validation films) to 0.00" in sentence
    # The page gives agreement its interval (Wilson) and kappa.
    assert agreement.detail["ci"][0] == 0.0 and agreement.detail["ci"][1] == pytest.approx(
        0.0458, abs=1e-3
    )
    client.force_login(radiologist)
    page = client.get(reverse("agreement") + "?model_version=v3").content.decode()
    assert "0.00–0.05; kappa 0.00" in page
    out = StringIO()
    call_command("monitor", "--no-check", "--site", "C", stdout=out)
    assert "0.00-0.05; kappa 0.00" in out.getvalue()


def test_weeks_are_stored_per_site_and_version(version, staff):
    monday = timezone.localtime().date() - timedelta(days=timezone.localtime().weekday() + 14)
    # From Sunday 09:00, hourly: 15 films that week, 15 the next.
    sunday = monday + timedelta(days=6)
    start = timezone.make_aware(timezone.datetime(sunday.year, sunday.month, sunday.day, 9))
    _stream(version, staff, "A", 30, start=start, distances=_calm(version))
    monitor_check()
    weeks = list(DriftWeek.objects.filter(site="A").order_by("week"))
    assert [w.week for w in weeks] == [monday, monday + timedelta(days=7)]
    assert [w.films for w in weeks] == [15, 15]
    assert [w.measured for w in weeks] == [15, 15]
    assert weeks[0].confidence == pytest.approx(0.8)


def test_a_version_without_a_reference_says_so_and_never_fires(staff, db):
    bare = ModelVersionFactory(name="old", classes=CLASSES)
    _stream(bare, staff, "A", 40, start=timezone.now(), distances=lambda rng: 1e9)
    monitor_check()
    status = DriftStatus.objects.get(signal=DriftSignal.DISTANCE)
    assert status.detail["why"] == "the model's bundle has no drift reference"
    assert not DriftStatus.objects.filter(firing=True).exists()


def test_default_rules_are_the_settings():
    assert Rules() == Rules.from_settings()


def test_the_shipped_bundle_carries_a_reference_and_registering_it_keeps_it(db):
    from xrayweb.inference.services.registry import model_version_register

    reference = read_metadata(DEFAULT_BUNDLE).gate["reference"]
    assert reference["films"] == {"train": 1439, "val": 330}
    assert len(reference["val_distance_quantiles"]) == 101
    assert sum(reference["val_mix"].values()) == pytest.approx(1.0, abs=1e-3)
    version = model_version_register(bundle_path=DEFAULT_BUNDLE)
    assert version.drift_reference == reference


# --- where it shows ---------------------------------------------------------------------


@pytest.fixture
def alarming(version, staff):
    version.is_active = True
    version.save()
    start = timezone.now() - timedelta(days=10)
    _stream(version, staff, "A", 40, start=start, distances=_calm(version))
    _stream(version, staff, "B", 40, start=start, distances=_far(version))
    monitor_check()
    return version


def test_the_agreement_page_shows_the_alarm_as_a_sentence_and_a_chart_per_signal(
    client, radiologist, alarming
):
    client.force_login(radiologist)
    page = client.get(reverse("agreement")).content.decode()
    assert 'id="monitoring"' in page and 'id="drift-alarms"' in page
    assert "Site B (model v3): since" in page
    for title in (
        "Films beyond the training films&#x27; 95th percentile",
        "Prediction mix: distance from the validation mix",
        "Mean confidence",
        "Agreement with the radiologists&#x27; final labels",
    ):
        assert f"<title>{title}</title>" in page
    # Sliced to site A: no alarm there.
    page = client.get(reverse("agreement") + "?site=A").content.decode()
    assert 'id="drift-alarms"' not in page and "No alarm is open." in page


def test_the_agreement_page_before_any_check_says_when_the_monitor_runs(client, radiologist, db):
    client.force_login(radiologist)
    page = client.get(reverse("agreement")).content.decode()
    assert "The drift monitor has not measured anything yet" in page


def test_the_monitor_command_checks_and_prints_the_report(alarming):
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("monitor", "--exit-code", stdout=out)
    assert exit_.value.code == 1
    text = out.getvalue()
    assert "checked 2 site and model version pairs: 0 alarms opened, 0 closed" in text
    assert "Site B (model v3): since" in text
    assert "FIRING" in text and "Weeks (" in text
    out = StringIO()
    call_command("monitor", "--no-check", "--site", "A", stdout=out)
    assert "No open alarm." in out.getvalue()
    with pytest.raises(CommandError, match="give 1 week or more"):
        call_command("monitor", "--weeks", "0")
    with pytest.raises(CommandError, match="no model version 'v9'"):
        call_command("monitor", "--model-version", "v9")


def test_metrics_carry_each_signal_and_whether_it_fires(client, settings, alarming):
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-0123456789")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    alarms = {
        (s.labels["site"], s.labels["signal"]): s.value
        for s in families["xrayweb_drift_alarm"].samples
    }
    assert alarms[("B", "distance")] == 1.0 and alarms[("A", "distance")] == 0.0
    values = {
        (s.labels["site"], s.labels["signal"]): s.value
        for s in families["xrayweb_drift_value"].samples
    }
    assert values[("B", "distance")] == 1.0
    assert families["xrayweb_drift_last_check_timestamp_seconds"].samples[0].value > 0


def test_a_site_that_stops_sending_films_has_its_alarm_closed_and_its_signals_emptied(
    version, staff, settings
):
    from xrayweb.studies.models import Study

    _stream(
        version, staff, "B", 60, start=timezone.now() - timedelta(days=2), distances=_far(version)
    )
    monitor_check()
    assert DriftStatus.objects.filter(site="B", firing=True).exists()
    # Its films fall out of the lookback.
    settings.MONITOR_WEEKS = 1
    Study.objects.update(created_at=timezone.now() - timedelta(weeks=3))
    assert monitor_check() == {"groups": 0, "opened": 0, "closed": 1}
    assert DriftAlarm.objects.get().cleared_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.MONITOR_CLEARED)
    assert event.detail["why"] == "no films in the last MONITOR_WEEKS weeks"
    assert not DriftStatus.objects.filter(firing=True).exists()
    assert set(DriftStatus.objects.values_list("films", flat=True)) == {0}
    # The report shows no week from before the lookback.
    assert DriftWeek.objects.exists()
    for row in DriftWeek.objects.all():
        DriftWeek.objects.filter(pk=row.pk).update(week=row.week - timedelta(weeks=5))
    assert monitor_report()["weeks"] == []


def test_the_oldest_week_is_read_whole():
    from xrayweb.review.monitoring import lookback_start

    start = lookback_start(timezone.now())
    local = timezone.localtime(start)
    assert local.weekday() == 0 and (local.hour, local.minute, local.second) == (0, 0, 0)
    assert timedelta(weeks=26) <= timezone.now() - start < timedelta(weeks=27)


def test_without_a_version_the_charts_show_nothing_rather_than_mix_versions(version, staff):
    from xrayweb.review.monitoring import monitor_series

    other = ModelVersionFactory(name="v4", classes=CLASSES, drift_reference=_reference(1))
    start = timezone.now() - timedelta(days=3)
    _stream(version, staff, "A", 30, start=start, distances=_calm(version))
    _stream(other, staff, "A", 30, start=start, distances=_far(version))
    monitor_check()
    report = monitor_report()
    assert monitor_series(report, None)["weeks"] == []
    series = monitor_series(report, version)
    assert series["weeks"] and len(series[DriftSignal.DISTANCE]["series"]) == 1


def test_weekly_charts_break_at_weeks_without_a_value_and_say_each_weeks_films():
    from xrayweb.review.charts import trend_svg, weekly_svg

    weeks = ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
    svg = weekly_svg(
        "t",
        weeks,
        [
            {
                "name": "Site A",
                "values": dict(zip(weeks, [0.2, 0.3, None, 0.5], strict=True)),
                "n": {weeks[0]: 7},
            }
        ],
        "share",
        reference=0.21,
        reference_label="validation films",
    )
    assert svg.count("<polyline") == 1  # weeks 1-2 joined; week 4 stands alone
    assert svg.count('class="point"') == 3
    assert "Site A, week of 2026-11-02: 0.20, n=7" in svg
    assert "validation films: 0.21" in svg
    trend = trend_svg([{"period": "2026-11-02", "n": 12, "agreement": 0.75}])
    assert "week of 2026-11-02: 0.75, n=12" in trend and "Agreement over time" in trend
