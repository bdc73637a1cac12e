"""`refract init`: prisma.yml and a starter datamodel from the console's starters."""

from __future__ import annotations

import pytest
from refract_cli.project import Project

from servers.starters import get_starter

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


def test_init_writes_prisma_yml_and_the_starter_datamodel(make_user, live_server):
    user = make_user(console=live_server.url)

    done = user.run("init", "--starter", "blog", "--service", "myblog")

    assert done.returncode == 0, done.output
    assert (user.project / "datamodel.prisma").read_text() == get_starter("blog").datamodel
    written = Project(user.project / "prisma.yml")
    assert written.service_stage() == ("myblog", "dev") and written.cluster == ""
    assert written.datamodel() == get_starter("blog").datamodel

    again = user.run("init", "--starter", "blog")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_without_a_terminal_init_names_the_flag_and_the_starters(make_user, live_server):
    user = make_user(console=live_server.url)

    refused = user.run("init")

    assert refused.returncode == 1
    assert "Pass --starter, one of: blank, blog, shop." in refused.stderr
    assert not (user.project / "prisma.yml").exists()
