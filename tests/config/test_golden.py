"""Golden identifiers: the contract that an identifier never changes silently.

A failing test here means that the identity encoding (or the way a value reaches it) changed:
every identifier computed by earlier etude versions is now different, so every user's cached
job folder would be invalidated and every finished job would run again. Do not update a value
to make the test pass unless that break is deliberate, announced, and comes with a migration.

The classes live in `golden_models.py` with fixed `__etude_name__` values, so these identifiers
do not depend on the path or module name of the test files.
"""

import hashlib
import struct
import unicodedata
from collections.abc import Callable
from pathlib import Path

import golden_models as g
import numpy as np
import pytest

from etude.config import Config, digest, identifier, tag


def _learn(**values: object) -> g.Learn:
    return g.Learn.C(**{"model": g.Model.C(), "lr": 1e-3, **values})


def _learn_meta_and_paths_changed() -> g.Learn:
    learn = _learn(device="cuda:1", data=Path("/elsewhere/data"))
    learn.parameters = Path("/jobs/x/parameters.pth")
    learn.log = Path("/jobs/x/log.txt")
    return learn


def _learn_with_init_task() -> g.Learn:
    learn = _learn()
    learn._etude.init_tasks = (g.Warmup.C(),)
    return learn


def _learn_with_two_init_tasks() -> g.Learn:
    learn = _learn()
    learn._etude.init_tasks = (g.Warmup.C(), g.Warmup.C(checkpoint="other.pth"))
    return learn


def _evaluate_task_output() -> g.Evaluate:
    learned = _learn()
    learned._etude.dep_digest = digest(_learn())
    return g.Evaluate.C(learned=learned)


def _evaluate_plain_value() -> g.Evaluate:
    return g.Evaluate.C(learned=_learn())


def _one_instance_twice() -> g.Ensemble:
    model = g.InstanceModel.C()
    return g.Ensemble.C(members=[model, model])


def _two_equal_instances_and_a_third_in_a_dict() -> g.Ensemble:
    first, second = g.InstanceModel.C(hidden=8), g.InstanceModel.C(hidden=8)
    # Fields count in name order: by_name's items (second, then a third) before members.
    extra = {"x": second, "y": g.InstanceModel.C(hidden=8)}
    return g.Ensemble.C(members=[first, second, first], by_name=extra)


def _scalars_tagged() -> g.Scalars:
    return g.Scalars.C(count=tag(3)).tag("name", "tagged")


Factory = Callable[[], Config]

GOLDEN = [
    # Scalars
    pytest.param(
        g.Empty.C,
        "2c43ceeedf7ed2e26c4f57f32afbaed3d393288cc23b043d4348c3baad95430f",
        id="empty-class",
    ),
    pytest.param(
        g.Scalars.C,
        "3c75b1134d87dc2303528963cb91402ad281ef8280b5132f37892fc7e1cede0f",
        id="scalars-defaults",
    ),
    pytest.param(
        lambda: g.Scalars.C(flag=False, count=0, ratio=0.5, name="", maybe=None),
        "3c75b1134d87dc2303528963cb91402ad281ef8280b5132f37892fc7e1cede0f",
        id="scalars-defaults-given-explicitly",
    ),
    pytest.param(
        lambda: g.Scalars.C(flag=True),
        "161495d87937573be6c6c794c365b905d6b2046daba01b7cd324384df3bf010c",
        id="bool-true",
    ),
    pytest.param(
        lambda: g.Scalars.C(count=42),
        "582711da5110bac45022556899819c56793cebfdec494c29b4173b91981f09c2",
        id="int-42",
    ),
    pytest.param(
        lambda: g.Scalars.C(count=-7),
        "81d97deadaf1ff5acd3d68f971ad9cf2f2c57ff92d9d8ace7571315bc3c447b4",
        id="int-negative",
    ),
    pytest.param(
        lambda: g.Scalars.C(count=2**100),
        "6dacb21fe90025beeb23d57022dfb09e42b5495c64f3437f04207d3813836ce7",
        id="int-2-pow-100",
    ),
    pytest.param(
        lambda: g.Scalars.C(count=-(2**70)),
        "b35276f8f7414671023f42ecc391a5c9f3790df2740427c58ee19d4bb29b6517",
        id="int-minus-2-pow-70",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=0.1),
        "9a725b08c80d7afd6655f191fc5cf0760ab6405c90de1c70d5ded0caa728ea07",
        id="float-0.1",
    ),
    # NumPy scalars are the Python values they print as (np.float32(0.1) is 0.1, not
    # 0.10000000149011612): the same identifiers as the plain values above.
    pytest.param(
        lambda: g.Scalars.C(ratio=np.float32(0.1)),
        "9a725b08c80d7afd6655f191fc5cf0760ab6405c90de1c70d5ded0caa728ea07",
        id="numpy-float32-0.1",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=np.float64(0.1)),
        "9a725b08c80d7afd6655f191fc5cf0760ab6405c90de1c70d5ded0caa728ea07",
        id="numpy-float64-0.1",
    ),
    pytest.param(
        lambda: g.Scalars.C(flag=np.bool_(True), count=np.int64(42)),
        "6631019a4a4739037e9ce71b7a11fc07bb75308215d27bf755929536769e019e",
        id="numpy-bool-and-int-as-flag-true-count-42",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=1e-300),
        "afcd137912e0c904e378fc683e4b67c06e2c15127672ff1fec2477c6643313f3",
        id="float-1e-300",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=float("inf")),
        "934a90ba89fc68bdbbdb213ed8f4359b1ab4c184b68657f005009c62fb89bed9",
        id="float-inf",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=float("-inf")),
        "3fe75fff0199ac60997413600dcb0b3f233e034a562fe4d3b714bc0813c6128b",
        id="float-minus-inf",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=float("nan")),
        "977e2da4d6a8641718ebcb56977321570404ad09560e6810c732d0dfcc9f0f6a",
        id="float-nan",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=0.0),
        "1be63c8c25ba5bb0eb86b555940f5b00ab3d54507e1db9799b347cd029480d8d",
        id="float-zero",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=-0.0),
        "e3a1b3758224a9c59907353c20f2bd3f5e02405a8599a9b2bcb8bf3bbdf53328",
        id="float-negative-zero",
    ),
    pytest.param(
        lambda: g.Scalars.C(ratio=1),
        "fdd6344272560bed3c1d0a4acb6645b480a4ecbdce85eb6976d2de8b933dc438",
        id="float-given-int",
    ),
    pytest.param(
        lambda: g.Scalars.C(name="hello"),
        "325036aaa05874b79c64f3657985d94fca00799d47d332f9908f81cc15690348",
        id="str-ascii",
    ),
    pytest.param(
        lambda: g.Scalars.C(name=unicodedata.normalize("NFC", "héllo")),
        "2dd24e8e9e5fba271d536e6b05c382a1bf3b274149470e8827bb9c803bf4a14a",
        id="str-nfc",
    ),
    pytest.param(
        lambda: g.Scalars.C(name=unicodedata.normalize("NFD", "héllo")),
        "c4b713766a8516c975a3681c192ebed136d238a18fd3e4185a793659285f420b",
        id="str-nfd",
    ),
    pytest.param(
        lambda: g.Scalars.C(name="日本"),
        "8186ba1c5e0ac950844044b3372c617b5ce3549903a6e048d8d7e2da4ceb08e9",
        id="str-japanese",
    ),
    pytest.param(
        lambda: g.Scalars.C(name="🙂"),
        "11e930f5f04682a025d9fef701b3c9c61c292a62bf864dea1b095fca5a4b0a25",
        id="str-emoji",
    ),
    pytest.param(
        lambda: g.Scalars.C(color=g.Color.GREEN),
        "9692b58ff8395c75763c06d428b19245b06d7d7f9f3e6e84f9f7048080c6ee06",
        id="enum",
    ),
    pytest.param(
        lambda: g.Scalars.C(maybe=0),
        "0ef07cd80ee742c8e2c9233b6ba3ed88e3d4c4fb6afc38a969c9a1e1bf3e58e9",
        id="optional-zero",
    ),
    pytest.param(
        _scalars_tagged,
        "2369f23ef5b52639709bb8237008336787589317ca4ec5a1b0ea08bf553930c1",
        id="tags-excluded",
    ),
    # Containers
    pytest.param(
        g.Containers.C,
        "34cfef9f2be056a0b0fcb2880bae27ba5ba0d5761b0070f7a85ea866d9afcc2a",
        id="containers-defaults",
    ),
    pytest.param(
        lambda: g.Containers.C(items=[], mapping={}, labels=set(), frozen=frozenset()),
        "34cfef9f2be056a0b0fcb2880bae27ba5ba0d5761b0070f7a85ea866d9afcc2a",
        id="empty-containers-given-explicitly",
    ),
    pytest.param(
        lambda: g.Containers.C(items=[1, 2, 3]),
        "c16f5d113b769104b17b55c8602f57e4e91e6ac6c271c086ab62c91f15605206",
        id="list",
    ),
    pytest.param(
        lambda: g.Containers.C(items=[3, 2, 1]),
        "e07b915c7a65cd90d18df59e789fdc34b8dac867324b23124a4346afdc3da20d",
        id="list-reversed",
    ),
    pytest.param(
        lambda: g.Containers.C(pair=(1, "a")),
        "de924c286990e2e67785e5fb05036203a5261e003ebc07d4b0ce22f0c53e18ad",
        id="tuple",
    ),
    pytest.param(
        lambda: g.Containers.C(mapping={"a": 1.0, "b": 2.0}),
        "42a44d9d1e38d64d427ed6626e13783bc8c98ba0530020b71e9133f31406ebda",
        id="dict",
    ),
    pytest.param(
        lambda: g.Containers.C(labels={"x", "y", "z"}),
        "b5060f476929ef46e5ad172c27966bd292dce17aac6513920bb1d32404429bae",
        id="set",
    ),
    pytest.param(
        lambda: g.Containers.C(frozen=frozenset({1, 2, 3})),
        "61f6bc1767e38622134381371d8a80d270863507c56666b24c6f21bee6b6c399",
        id="frozenset",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=[(1, "a"), {"k": [True, None]}, {2.5}]),
        "7dd91cd7e9aa080118216ef973d2e76b0c37a32a3596b7838fa9ccee0be5b556",
        id="any-nested-containers",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=()),
        "7bd656b96721a85216fccdadc7afa4356ebb62defa5aa5e1f4bb6c34cac2260e",
        id="any-empty-tuple",
    ),
    pytest.param(
        lambda: g.Containers.C(anything={}),
        "8a23d2541e87514a3c9f159b2ce727368bf6b875f5b347b2653d378ebb36526d",
        id="any-empty-dict",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=frozenset()),
        "6702bbb867efc730b19bf1e2f71e0b2db19b736301201654317a17d034344251",
        id="any-empty-frozenset",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=[]),
        "91512618b8c589022837d8e20c08eeecdde062ff647ff60c9beca670d2d25d03",
        id="any-empty-list",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=Path("a/b")),
        "b58553e062067adbb1117faf20794d7aa005af50d6d4c891583cf362b9973ab9",
        id="any-path",
    ),
    pytest.param(
        lambda: g.Containers.C(anything=g.Color.RED),
        "bd56093b682d360ea5e7780babd2111d06e807260f3bc8fdf07e0a06ce691f61",
        id="any-enum",
    ),
    # Nested configurations and tasks
    pytest.param(
        g.Model.C,
        "6ea96a714402d79ee9be841269a2f3138637840b991a69a73e87849a561fe510",
        id="model-defaults",
    ),
    pytest.param(
        lambda: g.Model.C(hidden=128),
        "f8921d437adde625e08cf3823709bb92cc4b5b6401501aa23dc0b4f273c03ccf",
        id="model-hidden-128",
    ),
    pytest.param(
        _learn, "cb8feb47ee9f9ce78b8eb2426abfdba666e31c01fd7fbd0034fd53c79a246ac9", id="learn"
    ),
    pytest.param(
        _learn_meta_and_paths_changed,
        "cb8feb47ee9f9ce78b8eb2426abfdba666e31c01fd7fbd0034fd53c79a246ac9",
        id="learn-meta-and-paths-excluded",
    ),
    pytest.param(
        lambda: _learn(epochs=10),
        "0a5124e801a60bc971098d09dbcd176113d74817101870e5d450678e94669e99",
        id="learn-epochs-10",
    ),
    pytest.param(
        lambda: _learn(model=g.Model.C(hidden=128)),
        "7962646b6d1c7a9404e1c635a79de6be198f3e8eccbd9a53c3c48af41110ceeb",
        id="learn-nested-change",
    ),
    pytest.param(
        lambda: g.LearnV3.C(model=g.Model.C(), lr=1e-3),
        "49a66331ef4d962f3a9a3678982525a97f951602c91d047aaa8552e049d6cf66",
        id="learn-constant-changed",
    ),
    pytest.param(
        _learn_with_init_task,
        "904a3ea928bcccfefcd1989291a19c474d689b901399db944a6bae220f6cd4d5",
        id="learn-init-task",
    ),
    pytest.param(
        _learn_with_two_init_tasks,
        "d0fcfba4bb85c1727a04242cccad87b538fdb27f6fc92d27ef9d2807b0377913",
        id="learn-two-init-tasks",
    ),
    pytest.param(
        lambda: g.Ensemble.C(members=[g.Model.C(), g.Model.C(hidden=32)]),
        "13fac58d46f56e6e8b8f6cfefbbc11aac019b21b96628a1ad50473f34fffedb3",
        id="list-of-configs",
    ),
    pytest.param(
        lambda: g.Ensemble.C(by_name={"small": g.Model.C(hidden=8), "big": g.Model.C()}),
        "7ff14b929ec47fb76196bc858353de1bb5e0744e63ab60c6438f3df470c7a760",
        id="dict-of-configs",
    ),
    pytest.param(
        _evaluate_plain_value,
        "fb573e706136ad7a4b451769aa61dcdb41a27e637b9a6222e79bab6821bba36e",
        id="evaluate-plain-value",
    ),
    pytest.param(
        _evaluate_task_output,
        "159cc8fa3cfcf40f5690af27e42f75e2ab4b79d681e1b0d6b9d800a039d6f5a4",
        id="evaluate-task-output",
    ),
    # InstanceConfig: used once in a graph (or one object used twice), an instance has the
    # identifier of a plain configuration of the same values; equal distinct ones differ.
    pytest.param(
        lambda: g.InstanceModel.C(hidden=128),
        "f8921d437adde625e08cf3823709bb92cc4b5b6401501aa23dc0b4f273c03ccf",
        id="instance-alone-as-model-hidden-128",
    ),
    pytest.param(
        lambda: _learn(model=g.InstanceModel.C(hidden=128)),
        "7962646b6d1c7a9404e1c635a79de6be198f3e8eccbd9a53c3c48af41110ceeb",
        id="instance-nested-as-learn-nested-change",
    ),
    pytest.param(
        lambda: g.Ensemble.C(members=[g.Model.C(), g.Model.C()]),
        "1cf4074791c057589e5bf82e1c5f5452d8487e6eff43c4c87e31ea923fa0dc10",
        id="list-of-two-equal-configs",
    ),
    pytest.param(
        _one_instance_twice,
        "1cf4074791c057589e5bf82e1c5f5452d8487e6eff43c4c87e31ea923fa0dc10",
        id="one-instance-twice-as-two-equal-configs",
    ),
    pytest.param(
        lambda: g.Ensemble.C(members=[g.InstanceModel.C(), g.InstanceModel.C()]),
        "04c7c89a0b7e55a1f5ba2c06ab2d2ef7fb1fe2df7c3dbea7444e23b64cd59a0e",
        id="two-equal-instances",
    ),
    pytest.param(
        _two_equal_instances_and_a_third_in_a_dict,
        "174e0686e2ad79919042cfa62286c07e89b75b3fc650a4d052f1ab0640190011",
        id="three-equal-instances-shared-across-a-dict-and-a-list",
    ),
]


@pytest.mark.parametrize(("build", "expected"), GOLDEN)
def test_golden_identifier(build: Factory, expected: str) -> None:
    assert identifier(build()) == expected


def test_golden_table_pins_at_least_thirty_distinct_identifiers() -> None:
    """The table keeps its breadth: trimming it would weaken the contract."""
    assert len({p.values[1] for p in GOLDEN}) >= 30


def test_identifier_of_a_class_without_values_hashes_its_type_name() -> None:
    """Encoding layout, derived by hand: 'C', then the type name as LENGTH:BYTES."""
    expected = hashlib.sha256(b"C" + b"12:golden.Empty").hexdigest()
    assert identifier(g.Empty.C()) == expected


def test_identifier_of_changed_parameters_appends_name_and_tagged_value() -> None:
    """Encoding layout: parameters sorted by name, ints in decimal, floats as 8 IEEE bytes."""
    expected = hashlib.sha256(
        b"C12:golden.Model"
        + b"7:dropout" + b"f" + struct.pack(">d", 0.2)
        + b"6:hidden" + b"i128;"
    ).hexdigest()  # fmt: skip
    assert identifier(g.Model.C(hidden=128, dropout=0.2)) == expected


def test_a_second_equal_instance_appends_its_rank() -> None:
    """Encoding layout: among distinct equal InstanceConfig objects of one graph, the first
    (in encoding order) is encoded as a plain configuration, the n-th gets '#' n-1 ';'."""
    values = b"C12:golden.Model" + b"6:hidden" + b"i128;"
    first = hashlib.sha256(values).digest()
    second = hashlib.sha256(values + b"#1;").digest()
    expected = hashlib.sha256(
        b"C15:golden.Ensemble" + b"7:members" + b"l2:" + b"c" + first + b"c" + second
    ).hexdigest()
    ensemble = g.Ensemble.C(members=[g.InstanceModel.C(hidden=128), g.InstanceModel.C(hidden=128)])
    assert identifier(ensemble) == expected


def test_identifier_of_a_nested_config_contains_its_digest() -> None:
    """Encoding layout: a nested config is 'c' + its 32-byte digest; Constants always count."""
    model = g.Model.C(hidden=128)
    expected = hashlib.sha256(
        b"C12:golden.Learn"
        + b"2:lr" + b"f" + struct.pack(">d", 1e-3)
        + b"5:model" + b"c" + digest(model)
        + b"7:version" + b"s1:2"
    ).hexdigest()  # fmt: skip
    assert identifier(g.Learn.C(model=model, lr=1e-3)) == expected
