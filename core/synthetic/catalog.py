"""The catalogue: categories and Zipf-popular products, named and priced from the vocabulary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.synthetic.config import US_PER_DAY
from core.synthetic.tables import Table, _flatten, _join, _padded, _pick, _ts, _words
from core.synthetic.vocabulary import ADJECTIVES, COLOURS, DEPARTMENTS


class _CatalogSteps:
    """The shop's catalogue: built once per shop, sampled by every batch of customers."""

    def _build_catalog(self) -> None:
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0]))
        departments, leaves = [], []
        for d, (dept, brands, dept_leaves) in enumerate(DEPARTMENTS):
            departments.append((dept, brands))
            for leaf in dept_leaves:
                leaves.append((d, *leaf))
        self.departments, self.leaves = departments, leaves
        n_dept, n_leaf = len(departments), len(leaves)
        self.leaf_department = np.array([leaf[0] for leaf in leaves], dtype=np.int64)
        self.category_ids = np.arange(1, n_dept + n_leaf + 1, dtype=np.int64)
        self.leaf_category_id = n_dept + 1 + np.arange(n_leaf, dtype=np.int64)

        # Products: contiguous by leaf so a category's products are one slice of the cumulative weights.
        leaf_share = rng.gamma(2.0, 1.0, n_leaf)
        leaf_share /= leaf_share.sum()
        leaf_of = np.sort(rng.choice(n_leaf, size=cfg.products, p=leaf_share))
        self.product_leaf = leaf_of
        self.leaf_lo = np.searchsorted(leaf_of, np.arange(n_leaf), side="left")
        self.leaf_hi = np.searchsorted(leaf_of, np.arange(n_leaf), side="right")
        # Zipf popularity by a random rank; category masses follow from the products they hold.
        rank = rng.permutation(cfg.products) + 1
        weight = rank.astype(float) ** -cfg.zipf_exponent
        self.product_rank = rank
        self.cumulative_weight = np.r_[0.0, np.cumsum(weight)]
        self.leaf_mass = self.cumulative_weight[self.leaf_hi] - self.cumulative_weight[self.leaf_lo]
        self.leaf_p = self.leaf_mass / self.leaf_mass.sum()

        p = cfg.products
        nouns, noun_off, noun_cnt = _flatten([leaf[2] for leaf in leaves])
        materials, mat_off, mat_cnt = _flatten([leaf[4] for leaf in leaves])
        features, feat_off, feat_cnt = _flatten([leaf[5] for leaf in leaves])
        brands, brand_off, brand_cnt = _flatten([dept[1] for dept in departments])
        self._nouns, self._noun_off, self._noun_cnt = _words(nouns), noun_off, noun_cnt
        self._brands, self._brand_off, self._brand_cnt = _words(brands), brand_off, brand_cnt
        self._leaf_names = _words([leaf[1] for leaf in leaves])
        self._colours = _words(COLOURS)
        noun = _pick(rng, noun_off, noun_cnt, leaf_of)
        material = _pick(rng, mat_off, mat_cnt, leaf_of)
        dept = self.leaf_department[leaf_of]
        # Brands are Zipf-popular within a department: a few big names, a long tail.
        brand_rank = np.minimum(rng.zipf(1.6, p) - 1, brand_cnt[dept] - 1)
        brand = brand_off[dept] + brand_rank
        adjective = rng.integers(0, len(ADJECTIVES), p)
        colour = rng.integers(0, len(COLOURS), p)
        first_feature = _pick(rng, feat_off, feat_cnt, leaf_of)
        second_feature = feat_off[leaf_of] + (
            (first_feature - feat_off[leaf_of] + 1 + (rng.random(p) * (feat_cnt[leaf_of] - 1)).astype(int))
            % feat_cnt[leaf_of]
        )

        def title(words: Sequence[str]) -> np.ndarray:
            return _words([w[:1].upper() + w[1:] for w in words])

        adjectives_t, colours_t = title(ADJECTIVES), title(COLOURS)
        materials_t, nouns_t = title(materials), title(nouns)
        self.product_noun, self.product_colour, self.product_brand = noun, colour, brand
        self.product_name = _join(
            adjectives_t[adjective], b" ", colours_t[colour], b" ", materials_t[material], b" ", nouns_t[noun]
        )
        feature_words, material_words = _words(features), _words(materials)
        leaf_lower = np.strings.lower(self._leaf_names)
        dept_lower = np.strings.lower(_words([d[0] for d in departments]))
        self.product_description = _join(
            self.product_name,
            b" by ",
            self._brands[brand],
            b". A ",
            _words(ADJECTIVES)[adjective],
            b" ",
            self._nouns[noun],
            b" in ",
            self._colours[colour],
            b" ",
            material_words[material],
            b", ",
            feature_words[first_feature],
            b" and ",
            feature_words[second_feature],
            b". Part of our ",
            leaf_lower[leaf_of],
            b" collection in ",
            dept_lower[dept],
            b".",
        )
        self.product_attributes = _join(
            b'{"colour": "', self._colours[colour], b'", "material": "', material_words[material], b'"}'
        )
        median = np.array([leaf[3] for leaf in leaves])[leaf_of]
        brand_premium = rng.lognormal(0.0, 0.2, len(brands))[brand]
        pounds = median * brand_premium * rng.lognormal(0.0, 0.45, p)
        # Shelf prices end in .49 or .99.
        self.price_cents = np.maximum(np.rint(pounds * 2) * 50 - 1, 49).astype(np.int64)

    def _catalog_tables(self) -> list[Table]:
        """Categories and products."""
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2]))
        n_dept = len(self.departments)
        dept_names = _words([d[0] for d in self.departments])
        leaf_names = self._leaf_names
        leaf_paths = _join(dept_names[self.leaf_department], b" > ", leaf_names)
        parent = np.r_[np.zeros(n_dept, dtype=np.int64), self.leaf_department + 1]
        categories = Table(
            "categories",
            {
                "id": self.category_ids,
                "path": np.r_[dept_names, leaf_paths],
                "name": np.r_[dept_names, leaf_names],
                "parent_id": parent,
                "depth": np.r_[np.zeros(n_dept, dtype=np.int64), np.ones(len(leaf_names), dtype=np.int64)],
            },
            nulls={"parent_id": parent == 0},
        )

        p = cfg.products
        ids = np.arange(1, p + 1, dtype=np.int64)
        sku = _padded(b"SKU", ids, 8)
        sku_lower = np.strings.lower(sku)
        created = self.start_us - (rng.random(p) * 3 * 365 * US_PER_DAY).astype(np.int64) - US_PER_DAY
        untracked = rng.random(p) < 0.1
        stock = np.where(rng.random(p) < 0.04, 0, np.rint(rng.lognormal(3.5, 1.0, p))).astype(np.int64)
        products = Table(
            "products",
            {
                "id": ids,
                "sku": sku,
                "name": self.product_name,
                "description": self.product_description,
                "category_id": self.leaf_category_id[self.product_leaf],
                "category_path": leaf_paths[self.product_leaf],
                "brand": self._brands[self.product_brand],
                "price": self.price_cents,
                "currency": np.full(p, cfg.currency.encode(), dtype="S3"),
                "stock": stock,
                "active": rng.random(p) >= 0.04,
                "url": _join(b"https://shop.example.com/products/", sku_lower),
                "image_url": _join(b"https://cdn.example.com/images/", sku_lower, b".jpg"),
                "attributes": self.product_attributes,
                "created_at": _ts(created),
                "updated_at": _ts(
                    np.minimum(created + (rng.random(p) * 90 * US_PER_DAY).astype(np.int64), self.start_us)
                ),
            },
            nulls={"stock": untracked},
            scales={"price": 2},
        )
        return [categories, products]

    def sample_products(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        """Zipf-weighted products, restricted to `leaf` where it is >= 0 (the whole catalogue elsewhere)."""
        leaf = np.asarray(leaf)
        restricted = leaf >= 0
        safe = np.where(restricted, leaf, 0)
        lo = np.where(restricted, self.cumulative_weight[self.leaf_lo[safe]], 0.0)
        hi = np.where(restricted, self.cumulative_weight[self.leaf_hi[safe]], self.cumulative_weight[-1])
        target = lo + rng.random(len(leaf)) * (hi - lo)
        product = np.searchsorted(self.cumulative_weight, target, side="right") - 1
        # Floating point at a slice edge can land one outside the slice: clamp back into it.
        upper = np.where(restricted, self.leaf_hi[safe] - 1, self.config.products - 1)
        lower = np.where(restricted, self.leaf_lo[safe], 0)
        return np.clip(product, lower, upper).astype(np.int64)
