import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import yaml

from seq2epi.lab import parameters
from seq2epi.model.train import TrainConfig
from seq2epi.model.transformer import ModelConfig

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((REPO / "parameters" / "base.yaml").read_text())


@pytest.fixture
def workbook(tmp_path):
    """A copy of the workbook's notebooks and parameters."""
    for folder in ("notebooks", "parameters"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def test_base_yaml_declares_exactly_the_notebooks_parameters_with_the_same_defaults():
    declared = {}
    for stage in parameters.STAGES:
        for key, default in parameters.declared_parameters(REPO / "notebooks" / f"{stage}.ipynb").items():
            assert declared.setdefault(key, default) == default, f"{stage} declares {key} differently"
    assert BASE == declared


# 02_train resolves these two before building TrainConfig: "auto" -> cuda or cpu, 8 -> at most the cores.
RESOLVED_BY_THE_NOTEBOOK = {"device", "num_workers"}


@pytest.mark.parametrize("config", [TrainConfig, ModelConfig])
def test_dataclass_defaults_agree_with_base_yaml(config):
    shared = [f for f in dataclasses.fields(config) if f.name in set(BASE) - RESOLVED_BY_THE_NOTEBOOK]
    assert len(shared) >= 7
    for field in shared:
        default = tuple(BASE[field.name]) if isinstance(field.default, tuple) else BASE[field.name]
        assert field.default == default, f"{config.__name__}.{field.name}"


def test_every_range_names_a_declared_parameter_and_every_default_is_in_range():
    assert set(parameters.RANGES) <= set(BASE)
    for key, value in BASE.items():
        parameters.check_range(key, value, "base.yaml")


def test_every_experiment_file_is_valid_and_keeps_data_dir_as_given(monkeypatch):
    monkeypatch.setenv("SEQ2EPI_DATA", "/somewhere/data")
    for path in sorted((REPO / "parameters").glob("*.yaml")):
        if path.stem != "base":
            params = parameters.load_parameters(path.stem, REPO)
            assert params["data_dir"] is None and params["experiment"] == path.stem


def test_lab_runs_carry_the_lab_hyperparameters():
    train2 = parameters.load_parameters("0503_train2", REPO)
    assert (train2["ninp"], train2["epochs"], train2["kmers"], train2["nlayers"]) == (256, 15, [13], 6)
    assert parameters.load_parameters("0504_train1", REPO)["kmers"] == [20]
    assert parameters.load_parameters("0503_train1", REPO)["lr_scale"] == 0.1


def test_unknown_key_is_refused_naming_the_file(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("ninp: 64\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown parameter 'learning_rate'"):
        parameters.load_parameters("bad", workbook)


@pytest.mark.parametrize("override, message", [({"ninp": "big"}, "'ninp' = 'big' is a str, expected a int"),
                                               ({"kmers": 13}, "'kmers' = 13 is a int, expected a list"),
                                               ({"rc_augment": 1}, "expected a bool")])
def test_wrong_types_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        parameters.load_parameters("smoke", REPO, override)


def test_an_int_is_accepted_where_a_float_is_expected():
    assert parameters.load_parameters("smoke", REPO, {"lr": 1})["lr"] == 1


@pytest.mark.parametrize("key, value, interval", [
    ("epochs", -1, "[1, inf)"), ("batch_size", 0, "[1, inf)"), ("val_fraction", 1.5, "(0, 1)"),
    ("val_fraction", 0, "(0, 1)"), ("dropout", 1.0, "[0, 1)"), ("kmers", [7, 0], "[1, inf)"),
    ("lr", 0, "(0, inf)"), ("warmup", 0, "[1, inf)")])
def test_impossible_numbers_are_refused_naming_the_file(workbook, key, value, interval):
    (workbook / "parameters" / "bad.yaml").write_text(yaml.safe_dump({key: value}))
    with pytest.raises(ValueError) as err:
        parameters.load_parameters("bad", workbook)
    assert str(err.value) == (f"{workbook / 'parameters' / 'bad.yaml'}: parameter {key!r} = {value!r} is "
                              f"impossible; expected a number in {interval}")
    with pytest.raises(ValueError, match=r"-p override: parameter 'epochs' = 0 is impossible"):
        parameters.load_parameters("smoke", workbook, {"epochs": 0})


def test_yaml_syntax_error_is_one_line_naming_file_line_and_column(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("ninp: 64\nkmers: [7, 13\nepochs: 3\n")
    with pytest.raises(ValueError) as err:
        parameters.load_parameters("bad", workbook)
    message = str(err.value)
    assert message.startswith(f"{workbook / 'parameters' / 'bad.yaml'}, line 3, column 7: ")
    assert "\n" not in message and "<unicode string>" not in message


def test_a_control_character_is_one_line_too():
    with pytest.raises(ValueError, match=r"^-p note=a\x00, character 2: special characters are not allowed"):
        parameters.parse_override("note=a\x00")


def test_python_tags_are_refused_in_one_line(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("note: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(ValueError) as err:
        parameters.load_parameters("bad", workbook)
    assert str(err.value) == (f"{workbook / 'parameters' / 'bad.yaml'}, line 1, column 7: the tag "
                              "!!python/object/apply:os.system is refused; parameter files hold plain values "
                              "(numbers, text, lists)")
    with pytest.raises(ValueError, match=r"^-p note=!!python/name:os.system, line 1, column 1: the tag"):
        parameters.parse_override("note=!!python/name:os.system")


@pytest.mark.parametrize("name", ["../smoke", "../../etc/passwd", "sub/smoke", ".hidden", "missing", ""])
def test_an_experiment_name_must_be_a_parameter_file_stem(workbook, name):
    (workbook / "sub").mkdir()
    shutil.copy(workbook / "parameters" / "smoke.yaml", workbook / "sub" / "smoke.yaml")
    with pytest.raises(ValueError, match=rf"experiment {name!r} is not a parameter file in .*parameters; "
                                         r"expected one of .*smoke"):
        parameters.load_parameters(name, workbook)


def test_data_dir_is_relative_to_the_workbook_and_resolved_at_use(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQ2EPI_DATA", str(tmp_path))
    assert parameters.data_dir(None, REPO) == tmp_path
    assert parameters.data_dir("/x/y", REPO) == Path("/x/y")
    monkeypatch.setenv("SEQ2EPI_DATA", "../shared/data")
    assert parameters.data_dir(None, REPO) == (REPO / "../shared/data").resolve()
    monkeypatch.delenv("SEQ2EPI_DATA")
    assert parameters.data_dir(None, REPO) == REPO / "data"
    monkeypatch.chdir(REPO / "notebooks")  # as a notebook's kernel sits inside the workbook
    assert parameters.data_dir("mine") == REPO / "mine"


def test_parse_override_reads_yaml_values():
    assert parameters.parse_override("kmers=[7, 13]") == ("kmers", [7, 13])
    assert parameters.parse_override("lr=1e-4") == ("lr", 1e-4)
    with pytest.raises(ValueError, match="key=value"):
        parameters.parse_override("epochs")


def test_a_csv_experiment_without_a_genome_has_nothing_to_predict():
    csv = parameters.load_parameters("smep_h3k4me3", REPO)
    assert set(parameters.idle_stages(csv)) == {"04_predict_genome"}
    assert parameters.idle_stages(parameters.load_parameters("smoke", REPO)) == {}
    assert parameters.idle_stages({"input": "csv", "predict_fasta": "genome.fa"}) == {}


def test_pretraining_runs_only_when_it_names_sequence():
    assert "00_pretrain" in parameters.optional_stages(parameters.load_parameters("smoke", REPO))
    assert "00_pretrain" not in parameters.optional_stages({"pretrain_csv": ["rice_smep/H3K4me3_train.csv"]})


def test_scoring_runs_only_when_it_names_a_record_and_then_alone():
    assert "06_score" in parameters.optional_stages(parameters.load_parameters("smoke", REPO))
    scoring_job = parameters.optional_stages({"score_record": "smep_h3k4me3"})
    assert scoring_job == set(parameters.STAGES) - {"06_score"}


def test_a_per_gene_regression_is_scored_by_its_own_evaluation_and_predicts_no_genome():
    genes = parameters.load_parameters("arabidopsis_chr1_genes", REPO)
    assert "03_evaluate" in parameters.optional_stages(genes)
    assert "03_evaluate_genes" not in parameters.optional_stages(genes)
    assert set(parameters.idle_stages(genes)) == {"04_predict_genome"}
    genomewide = parameters.load_parameters("arabidopsis_chr1", REPO)
    assert "03_evaluate_genes" in parameters.optional_stages(genomewide)
    assert parameters.idle_stages(genomewide) == {}


@pytest.mark.parametrize("override, message", [
    ({"kmers": ["a"]}, r"'kmers' = \['a'\] holds 'a', a str; expected a list of int"),
    ({"marks": ["H3K4me3", 3]}, r"'marks' = \['H3K4me3', 3\] holds 3, a int; expected a list of str"),
    ({"attention_dropout": "abc"}, r"'attention_dropout' = 'abc' is a str, expected a float$"),
    ({"train_seed": "abc"}, r"'train_seed' = 'abc' is a str, expected a int$"),
    ({"train_seed": 1.5}, r"'train_seed' = 1.5 is a float, expected a int$")])
def test_null_defaults_and_list_elements_are_type_checked(override, message):
    with pytest.raises(ValueError, match=r"^-p override: parameter " + message):
        parameters.load_parameters("smoke", REPO, override)
    accepted = parameters.load_parameters("smoke", REPO, {"train_seed": 3, "attention_dropout": 0})
    assert (accepted["train_seed"], accepted["attention_dropout"]) == (3, 0)


def test_a_yaml_date_as_data_dir_is_refused_with_the_way_out(workbook):
    (workbook / "parameters" / "bad.yaml").write_text("data_dir: 2024-01-01\n")
    with pytest.raises(ValueError) as err:
        parameters.load_parameters("bad", workbook)
    assert str(err.value) == (f"{workbook / 'parameters' / 'bad.yaml'}: parameter 'data_dir' = "
                              "2024-01-01 is a date (quote it to make it text), expected a str")


def test_an_experiment_extends_recipes_and_overrides_them(workbook):
    recipes = workbook / "parameters" / "recipes"
    (recipes / "tiny.yaml").write_text("extends: recipes/reduced_cpu\nnlayers: 1\nepochs: 2\n")
    (workbook / "parameters" / "mine.yaml").write_text("extends: recipes/tiny\nepochs: 3\n")
    params = parameters.load_parameters("mine", workbook)
    assert (params["ninp"], params["nlayers"], params["epochs"], params["nproc"]) == (64, 1, 3, BASE["nproc"])
    assert "extends" not in params


def test_a_recipe_holds_only_keys_of_base_yaml(workbook):
    (workbook / "parameters" / "recipes" / "odd.yaml").write_text("learning_rate: 0.1\n")
    (workbook / "parameters" / "mine.yaml").write_text("extends: recipes/odd\n")
    with pytest.raises(ValueError, match=r"recipes/odd.yaml: unknown parameter 'learning_rate'"):
        parameters.load_parameters("mine", workbook)


def test_a_cycle_of_recipes_is_refused_in_one_sentence(workbook):
    recipes = workbook / "parameters" / "recipes"
    (recipes / "a.yaml").write_text("extends: recipes/b\n")
    (recipes / "b.yaml").write_text("extends: recipes/a\n")
    (workbook / "parameters" / "mine.yaml").write_text("extends: recipes/a\n")
    with pytest.raises(ValueError) as err:
        parameters.load_parameters("mine", workbook)
    assert str(err.value) == (f"{recipes / 'b.yaml'}: extends 'recipes/a', which extends it back "
                              "(mine -> a -> b -> a); recipes may not form a cycle")


@pytest.mark.parametrize("name", ["recipes/missing", "smoke", "../base", 3])
def test_extends_must_name_a_recipe(workbook, name):
    (workbook / "parameters" / "mine.yaml").write_text(yaml.safe_dump({"extends": name}))
    recipes = sorted(f"recipes/{p.stem}" for p in (workbook / "parameters" / "recipes").glob("*.yaml"))
    assert "recipes/reduced_cpu" in recipes
    expected = re.escape(", ".join(recipes)) + "$"  # every recipe of the workbook, by name
    with pytest.raises(ValueError, match=rf"mine.yaml: extends {name!r}, which is not a recipe; expected one "
                                         rf"of {expected}"):
        parameters.load_parameters("mine", workbook)


def test_recipes_are_not_experiments():
    with pytest.raises(ValueError, match=r"is not a parameter file in .*; expected one of ") as err:
        parameters.load_parameters("recipes/reduced_cpu", REPO)
    assert "recipes/" not in str(err.value).split("expected one of ")[1]
    every_recipe_key = set()
    for recipe in (REPO / "parameters" / "recipes").glob("*.yaml"):
        every_recipe_key |= set(yaml.safe_load(recipe.read_text())) - {"extends"}
    assert every_recipe_key <= set(BASE)


def test_notebook_values_are_the_declared_parameters_of_the_stage_and_nothing_else():
    declared = parameters.declared_parameters(REPO / "notebooks" / "01_data_prep.ipynb")
    namespace = {**declared, "input": "genome", "np": object(), "_": 1}
    values = parameters.notebook_values(namespace, "01_data_prep", REPO)
    assert values == {**declared, "input": "genome"}
