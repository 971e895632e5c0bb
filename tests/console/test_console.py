"""The console in a real headless Chromium (Debian's chromium, driven by Playwright): the pages a
user reads, with the demo's kind of data, at 1280 and 390 px; screenshots of each main page go
to test-artifacts/console/."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from openpersonalize import synthetic
from tests.batch.conftest import ROLE, generated_group, train_versions
from tests.data.helpers import wait
from tests.servers import ServerProcess, free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    cat = synthetic.generate(n_users=120, n_items=80, interactions_per_user=12, seed=9)
    with generated_group(tmp_path_factory.mktemp("console"), "shop", cat, ("Interactions", "Items")) as (
            server, c, group, datasets):
        bad = c.create_dataset_import_job(jobName="broken-import", datasetArn=datasets["Items"], roleArn=ROLE,
                                          dataSource={"dataLocation": "s3://shop/missing.csv"})["datasetImportJobArn"]
        wait(lambda: c.describe_dataset_import_job(datasetImportJobArn=bad)["datasetImportJob"])
        versions = train_versions(c, group, "shop", ("aws-user-personalization",))
        campaign = c.create_campaign(name="live", solutionVersionArn=versions["aws-user-personalization"],
                                     campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}})["campaignArn"]
        wait(lambda: c.describe_campaign(campaignArn=campaign)["campaign"])
        c.create_event_tracker(name="site", datasetGroupArn=group)
        doomed = c.create_filter(name="doomed", datasetGroupArn=group,
                                 filterExpression='EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')["filterArn"]
        wait(lambda: c.describe_filter(filterArn=doomed)["filter"])
        yield type("Lab", (), {"server": server, "c": c, "group": group, "datasets": datasets, "bad": bad, "cat": cat,
                               "version": versions["aws-user-personalization"], "campaign": campaign, "doomed": doomed})


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (.ci/run installs it): apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_browse_every_main_page(lab, browser, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    base = lab.server.endpoint
    page.goto(base + "/")  # a browser at the root lands on the console
    assert page.url.endswith("/console/")
    assert page.get_by_role("link", name="shop", exact=True).is_visible()
    shoot(page, f"index-{width}")

    page.get_by_role("link", name="shop", exact=True).click()
    text = page.inner_text("main")
    assert "Datasets (2)" in text and "Campaigns (1)" in text
    assert "Invalid Data location" in text  # the failed import's reason, on the group page
    shoot(page, f"group-{width}")

    page.goto(f"{base}/console/resource?arn={lab.bad}")
    text = page.inner_text("main")
    assert "CREATE FAILED" in text and page.locator(".failure").is_visible()
    assert "CREATE PENDING" in text and "CREATE IN_PROGRESS" in text  # the status history

    page.goto(f"{base}/console/dataset?arn={lab.datasets['Interactions']}")
    chart = page.locator("svg.chart").first
    assert int(chart.get_attribute("data-points")) > 0 and page.locator("svg.chart rect").count() > 0
    shoot(page, f"dataset-{width}")

    solution = lab.version.rsplit("/", 1)[0]
    page.goto(f"{base}/console/solution?arn={solution}")
    assert "NDCG_at_10" in page.inner_text("main")
    assert page.locator("svg.chart rect").count() >= 4
    shoot(page, f"solution-{width}")

    page.goto(f"{base}/console/jobs")
    assert page.locator("#job-rows[hx-trigger='every 2s']").count() == 1
    assert "broken-import" in page.inner_text("main")
    shoot(page, f"jobs-{width}")

    for path in ("/console/", "/console/jobs", f"/console/try?arn={lab.campaign}", "/console/compare",
                 f"/console/resource?arn={lab.version}"):
        page.goto(base + path)
        assert page.evaluate(UNLABELLED) == [], path  # every control has a label
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, path  # no sideways scrolling
    page.close()


def test_the_jobs_page_updates_without_reloading(lab, browser):
    page = browser.new_page()
    page.goto(f"{lab.server.endpoint}/console/jobs")
    page.evaluate("window.marker = 'still the same page'")
    job = lab.c.create_dataset_export_job(jobName="live-export", datasetArn=lab.datasets["Interactions"], roleArn=ROLE,
                                          jobOutput={"s3DataDestination": {"path": "s3://shop/exports/"}})
    page.wait_for_function("document.querySelector('#job-rows').innerText.includes('live-export')", timeout=20000)
    page.wait_for_function("document.querySelector('#job-rows').innerText.includes('ACTIVE')", timeout=20000)
    assert page.evaluate("window.marker") == "still the same page"  # htmx swapped the rows in place
    assert job["datasetExportJobArn"]
    page.close()


def test_try_a_campaign_and_see_a_test_event_change_the_list(lab, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{lab.server.endpoint}/console/try?arn={lab.campaign}")
    user = str(lab.cat.user_ids[3])
    page.get_by_label("User ID").fill(user)
    page.get_by_role("button", name="Get recommendations").click()
    before = page.locator("#recommendations .item").all_inner_texts()
    assert len(before) == 10
    shoot(page, "try-1280")
    # An event on an item of another taste: the user's newest history moves the list.
    genres = set(lab.cat.user_genres[3])
    other = next(str(i) for i in lab.cat.item_ids if not set(lab.cat.genre_of(str(i))) & genres and str(i) not in before)
    page.get_by_label("Item ID of the event").fill(other)
    page.get_by_role("button", name="Send event and refresh").click()
    assert "Sent a click event" in page.inner_text("main")
    after = page.locator("#recommendations .item").all_inner_texts()
    assert len(after) == 10 and after != before
    # Why is the first item there: the user's own history items, from the model's arithmetic.
    page.locator("#recommendations details summary").first.click()
    page.wait_for_selector("#recommendations .why .explain")
    why = page.inner_text("#recommendations .why")
    history = {str(lab.cat.item_ids[i]) for i in lab.cat.items[lab.cat.users == 3]} | {other}
    named = [line.split("\t")[0] for line in why.splitlines() if "\t" in line and not line.startswith("History item")]
    assert named and set(named) <= history, why
    page.close()


def test_actions_go_through_the_api_rules(lab, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    base = lab.server.endpoint
    page.goto(f"{base}/console/resource?arn={lab.version}")
    page.get_by_label("Campaign name").fill("from-console")
    page.get_by_role("button", name="Create campaign").click()
    assert "from-console" in page.inner_text("main") and "CreateCampaign done" in page.inner_text("main")
    # The same name again: the API's own error, shown.
    page.goto(f"{base}/console/resource?arn={lab.version}")
    page.get_by_label("Campaign name").fill("from-console")
    page.get_by_role("button", name="Create campaign").click()
    assert "ResourceAlreadyExistsException" in page.inner_text("main")

    # A batch job started from the form, and its output previewed.
    (lab.server.data_dir / "s3" / "shop" / "in").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"userId": str(u)}) for u in lab.cat.user_ids[:6]] + ["{broken"]
    (lab.server.data_dir / "s3" / "shop" / "in" / "users.json").write_text("\n".join(lines) + "\n")
    page.goto(f"{base}/console/resource?arn={lab.version}")
    page.get_by_label("Job name").fill("console-batch")
    page.get_by_label("Input (s3://bucket/key.json)").fill("s3://shop/in/users.json")
    page.get_by_label("Output folder (s3://bucket/folder/)").fill("s3://shop/out/")
    page.get_by_role("button", name="Start job").click()
    job = page.url.split("arn=", 1)[1].split("&", 1)[0]
    deadline = time.time() + 60
    while "Output preview" not in page.inner_text("main") and time.time() < deadline:
        time.sleep(0.5)
        page.reload()
    assert "7 lines, 1 with an error." in page.inner_text("main"), job

    page.goto(f"{base}/console/resource?arn={lab.doomed}")
    page.get_by_role("link", name="delete…").click()
    page.get_by_label("I understand that this cannot be undone.").check()
    page.get_by_role("button", name="Delete").click()
    assert page.url.endswith(f"/console/group?arn={lab.group.replace(':', '%3A').replace('/', '%2F')}")
    filters = [f["filterArn"] for f in lab.c.list_filters(datasetGroupArn=lab.group)["Filters"]]
    assert lab.doomed not in filters
    page.close()


def test_with_access_keys_nothing_shows_before_sign_in(tmp_path, browser):
    server = ServerProcess(data_dir=tmp_path, port=free_port(), env={"OPENPERSONALIZE_ACCESS_KEYS": "AKID:s3cret"})
    server.start()
    try:
        page = browser.new_page()
        page.goto(server.endpoint + "/console/jobs")
        assert page.url.endswith("/console/signin") and "Sign in" in page.inner_text("main")
        page.get_by_label("Access key ID").fill("AKID")
        page.get_by_label("Secret access key").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        assert "not a pair" in page.inner_text("main")
        page.get_by_label("Access key ID").fill("AKID")
        page.get_by_label("Secret access key").fill("s3cret")
        page.get_by_role("button", name="Sign in").click()
        assert page.url.endswith("/console/") and "Dataset groups" in page.inner_text("main")
        page.close()
    finally:
        server.stop()


def test_forged_and_unconfirmed_actions_are_refused(lab):
    """A POST from another site's page (a forged form) is refused before any action; a delete
    without the confirmation box is refused on the server too; error text is escaped."""
    import urllib.error
    import urllib.parse
    import urllib.request

    base = lab.server.endpoint
    body = urllib.parse.urlencode({"confirm": "on"}).encode()
    url = f"{base}/console/delete?arn={urllib.parse.quote(lab.campaign, safe='')}"
    for origin in (None, "http://evil.example", "null"):
        request = urllib.request.Request(url, data=body, method="POST", headers={"Origin": origin} if origin else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
    own = urllib.parse.urlsplit(base).netloc
    request = urllib.request.Request(url, data=b"", method="POST", headers={"Origin": f"http://{own}"})
    with pytest.raises(urllib.error.HTTPError) as unconfirmed:
        urllib.request.urlopen(request, timeout=10)
    assert unconfirmed.value.code == 400
    assert lab.c.describe_campaign(campaignArn=lab.campaign)["campaign"]["status"] == "ACTIVE"  # still there

    evil = "<img src=x onerror=alert(1)>"
    page = urllib.request.urlopen(f"{base}/console/explain?arn={urllib.parse.quote(evil)}&userId=u&itemId=i",
                                  timeout=10).read().decode()
    assert "<img" not in page and "&lt;img" in page
