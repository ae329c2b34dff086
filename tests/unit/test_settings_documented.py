"""Every setting of every deployable is in the README, with its current default."""

from pathlib import Path

from hub.settings_doc import deployables, env_names, markdown

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme():
    missing = [env for _t, cls in deployables() for _n, env in env_names(cls)
               if f"`{env}`" not in README]
    assert missing == [], "regenerate with: .venv/bin/yigong config doc"


def test_readme_tables_match_the_code():
    assert markdown().strip() in README, "README settings tables are stale: yigong config doc"


def test_every_setting_has_a_description():
    bare = [env for _t, cls in deployables() for name, env in env_names(cls)
            if not cls.model_fields[name].description]
    assert bare == []
