from __future__ import annotations

import sys
import textwrap

import pytest

import compress
from compress.common.errors import UserError
from compress.strategies import (
    RegistryError,
    Strategy,
    register,
    registry,
    select,
    strategies_from_spec,
    unregister,
)

SPINE = {"baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune"}


def test_every_spine_strategy_is_registered_with_metadata():
    available = registry()
    assert set(available) >= SPINE
    for cls in available.values():
        assert cls.family and cls.summary


def test_wildcards_select_a_family():
    names = {cls.name for cls in select("quantize-*")}
    assert {"quantize-int8", "quantize-dynamic", "quantize-float16", "quantize-int8-io"} <= names


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(UserError) as error:
        select("nope")
    assert "baseline" in str(error.value) and "prune-magnitude" in str(error.value)


def test_a_duplicate_name_is_refused():
    class Impostor(Strategy):
        name, family, summary = "baseline", "x", "y"

    with pytest.raises(RegistryError, match="already registered"):
        register(Impostor)


def test_metadata_is_required():
    class Nameless(Strategy):
        family, summary = "x", "y"

    with pytest.raises(RegistryError, match="'name'"):
        register(Nameless)


@pytest.mark.parametrize(("attributes", "message"), [
    ({"name": "my:plugin"}, r"name 'my:plugin' could never be selected"),
    ({"name": "two words"}, r"could never be selected: a spec splits names at"),
    ({"cost": "cheap"}, r"cost must be a number of 0 or more .* got 'cheap'"),
    ({"cost": -1.0}, r"cost must be a number of 0 or more"),
    ({"cost": float("nan")}, r"cost must be a number of 0 or more"),
    ({"needs_trained_teacher": "no"}, r"needs_trained_teacher must be True or False, got 'no'"),
    ({"after_technique": True}, r"after_technique is True, but only a control waits"),
])
def test_a_plugin_that_could_never_run_is_refused_at_registration(attributes, message):
    plugin = type("Plugin", (Strategy,), {"name": "test-plugin", "family": "x", "summary": "y",
                                         "compress": lambda self, ctx: None, **attributes})
    with pytest.raises(RegistryError, match=message):
        register(plugin)
    assert "test-plugin" not in registry() and attributes.get("name") not in registry()


def test_a_parameter_without_a_checkable_annotation_is_refused_at_registration():
    class Untyped(Strategy):
        name, family, summary = "test-untyped", "x", "y"

        def __init__(self, keep_bias=True) -> None:  # a spec's "false" could not be checked
            self.keep_bias = keep_bias

    with pytest.raises(RegistryError, match=r"parameter 'keep_bias' needs an annotation of int, float"):
        register(Untyped)


def test_unknown_parameters_name_the_valid_ones():
    expected = "unknown parameter 'sparsty'; valid parameters: sparsity, epochs, lr"
    with pytest.raises(UserError, match=expected):
        strategies_from_spec("prune-magnitude:sparsty=0.5")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prune-magnitude:sparsity=1.5", "sparsity must be between 0 and 1"),
        ("prune-magnitude:sparsity=0", "sparsity must be between 0 and 1"),
        ("prune-magnitude:epochs=0", "epochs must be at least 1"),
        ("prune-magnitude:epochs=2.5", "epochs must be int"),
        ("distill:alpha=2", "alpha must be between 0 and 1"),
        ("distill:temperature=0", "temperature must be greater than 0"),
        ("distill:temperature=abc", "temperature must be float"),
        ("distill:student=rnn:3", "architecture 'rnn:3' is not understood"),
        ("finetune:lr=-1", "lr must be greater than 0"),
        ("quantize-int8:samples=0", "samples must be at least 1"),
    ],
)
def test_hyperparameters_are_validated(spec, message):
    with pytest.raises(UserError, match=message):
        strategies_from_spec(spec)


def test_spec_spells_out_every_parameter_and_round_trips():
    (strategy,) = strategies_from_spec("distill:alpha=0.2", overrides={"epochs": 7})
    assert strategy.spec() == (
        "distill:temperature=2.0,alpha=0.2,epochs=7,lr=0.001,batch_size=64,student=auto,transfer=mixup,"
        "max_steps=24000,patience=0.0,max_drop=null,features=0.0"
    )
    (again,) = strategies_from_spec(strategy.spec())
    assert again.get_params() == strategy.get_params()


def test_run_overrides_do_not_beat_what_a_spec_sets():
    (strategy,) = strategies_from_spec("finetune:epochs=3", overrides={"epochs": 9})
    assert strategy.epochs == 3
    (baseline,) = strategies_from_spec("baseline", overrides={"epochs": 9})  # no epochs: ignored
    assert baseline.get_params() == {}


def test_third_party_strategies_load_from_the_entry_point_group(tmp_path, monkeypatch):
    (tmp_path / "acme_plugin.py").write_text(textwrap.dedent('''
        from compress.strategies import Compressed, Strategy

        class AcmeIdentity(Strategy):
            name = "acme-identity"
            family = "baseline"
            summary = "A plugin found through the compress.strategies entry point."

            def __init__(self):
                pass

            def compress(self, ctx):
                return Compressed(model=ctx.teacher)
    '''))
    info = tmp_path / "acme_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[compress.strategies]\nacme-identity = acme_plugin:AcmeIdentity\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        plugin = registry(reload=True)["acme-identity"]
        assert plugin.summary.startswith("A plugin found")
        assert strategies_from_spec("acme-*")[0].name == "acme-identity"
    finally:
        unregister("acme-identity")
        sys.modules.pop("acme_plugin", None)


def test_the_packages_functions_stay_functions_after_every_module_is_imported():
    """compress.recommend and compress.tune once were module names too: importing the module
    turned the README's compress.recommend(rows) into a module.  No module of the package may
    share a name with an exported function again."""
    import pkgutil
    import subprocess
    import sys

    modules = [m.name for m in pkgutil.walk_packages(compress.__path__, "compress.")]
    clashes = [m for m in modules if m.count(".") == 1 and m.split(".")[1] in compress.__all__]
    assert not clashes
    code = (f"import compress, {', '.join(modules)}\n"
            "assert callable(compress.recommend), compress.recommend\n"
            "assert callable(compress.tune), compress.tune\n"
            "assert 'recommend' in dir(compress) and 'compare' in dir(compress)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
