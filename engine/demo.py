"""Demo data: the sample Sales CRM (apps/sales_crm.json) filled with realistic records in several languages.

Everything is generated in memory first (ids included, so records can point at each other and a customer's
lifetime value can add up their orders), then written in one transaction through the same writer imports use,
so the data passes every rule of the definition."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from faker import Faker

from engine.errors import FieldError, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.catalog import CATALOG
from engine.storage.database import Database
from engine.storage.records import RecordService, new_id
from engine.storage.writer import Writer
from engine.transfer import iter_records

__all__ = ["APP", "DEFAULT_SIZES", "DEMO_PASSWORD", "DEMO_USERS", "SALES_CRM", "DemoResult", "DemoSizes",
           "ensure_demo_users", "load_demo"]

#: The sample app the demo fills.
SALES_CRM = Path(__file__).resolve().parent.parent / "apps" / "sales_crm.json"
APP = "sales_crm"
LOCALES = ("en_US", "de_DE", "zh_CN", "ja_JP", "fr_FR", "es_ES")
#: The demo accounts: email, name, role ("admin" for the administrator). All share DEMO_PASSWORD.
DEMO_USERS = (("admin@example.com", "Ada Admin", "admin"), ("rep@example.com", "Sam Rep", "sales_rep"),
              ("manager@example.com", "Mia Manager", "sales_manager"),
              ("agent@example.com", "Theo Agent", "service_agent"), ("viewer@example.com", "Vic Viewer", "viewer"))
DEMO_PASSWORD = "demo-password-1"
_ORDER = ("company", "customer", "campaign", "deal", "sales_order", "interaction", "ticket")


@dataclass(frozen=True)
class DemoSizes:
    """How many records of each entity the demo creates."""

    companies: int = 40
    customers: int = 200
    campaigns: int = 10
    deals: int = 150
    orders: int = 300
    interactions: int = 400
    tickets: int = 80

    @classmethod
    def for_customers(cls, customers: int) -> DemoSizes:
        """Sizes in the default proportions for a number of customers."""
        return cls(companies=max(1, customers // 5), customers=customers, campaigns=max(1, customers // 20),
                   deals=customers * 3 // 4, orders=customers * 3 // 2, interactions=customers * 2,
                   tickets=customers * 2 // 5)


DEFAULT_SIZES = DemoSizes()


@dataclass
class DemoResult:
    """What `load_demo` did: whether it installed the app or skipped, and how many records of each entity it made."""

    installed: bool = False
    skipped: bool = False
    created: dict[str, int] = field(default_factory=dict)
    plurals: dict[str, str] = field(default_factory=dict)  # entity key -> its plural title, for summaries
    users: list[tuple[str, str, str]] = field(default_factory=list)  # demo users created: (email, role, name)


def ensure_demo_users(db: Database, actor: str = "demo") -> list[tuple[str, str, str]]:
    """The default roles and the demo accounts, those that are missing; returns the accounts created."""
    from engine.auth.accounts import create_user, ensure_default_roles, user_by_email

    ensure_default_roles(db)
    created = []
    for email, name, role in DEMO_USERS:
        if user_by_email(db, email) is None:
            admin = role == "admin"
            create_user(db, email, name, DEMO_PASSWORD, is_admin=admin, roles=() if admin else (role,), actor=actor)
            created.append((email, role, name))
    return created


# Per language: country, products, deal title pattern, interaction subjects, ticket subjects, campaign names.
_LANG: dict[str, dict[str, Any]] = {
    "en_US": {"country": "United States", "deal": "{p} for {c}",
              "products": ["CRM Cloud licence", "Support plan Gold", "Onboarding workshop", "Barcode scanner",
                           "Data migration package", "Analytics add-on"],
              "talk": ["Follow-up on the proposal", "Quarterly review", "Pricing questions", "Product demo",
                       "Contract renewal"],
              "tickets": ["Invoice shows the wrong amount", "Cannot log in to the portal", "Delivery is late",
                          "Request for a training date", "Great support, thank you!"],
              "campaigns": ["Spring Sale {y}", "Customer Summit {y}", "Back to Business {y}"]},
    "de_DE": {"country": "Deutschland", "deal": "{p} für {c}",
              "products": ["CRM-Cloud-Lizenz", "Supportvertrag Gold", "Einführungsworkshop", "Barcodescanner",
                           "Datenmigration", "Analyse-Modul"],
              "talk": ["Rückfrage zum Angebot", "Quartalsgespräch", "Fragen zur Preisliste", "Produktvorführung",
                       "Vertragsverlängerung"],
              "tickets": ["Rechnung enthält falschen Betrag", "Anmeldung im Portal schlägt fehl",
                          "Lieferung verspätet", "Schulungstermin gewünscht", "Danke für die schnelle Hilfe"],
              "campaigns": ["Frühjahrsaktion {y}", "Kundentag {y}", "Herbst-Newsletter {y}"]},
    "zh_CN": {"country": "中国", "deal": "{c}{p}项目",
              "products": ["CRM云服务许可", "金牌支持计划", "上线培训", "条码扫描器", "数据迁移服务", "数据分析模块"],
              "talk": ["方案跟进", "季度回顾", "价格咨询", "产品演示", "续约洽谈"],
              "tickets": ["发票金额有误", "无法登录客户门户", "发货延迟", "申请培训时间", "感谢快速支持"],
              "campaigns": ["{y}春季促销", "{y}客户大会", "{y}双十一活动"]},
    "ja_JP": {"country": "日本", "deal": "{c} {p}導入",
              "products": ["CRMクラウドライセンス", "ゴールドサポート", "導入ワークショップ", "バーコードスキャナー",
                           "データ移行パック", "分析オプション"],
              "talk": ["提案のフォローアップ", "四半期レビュー", "価格についての質問", "製品デモ", "契約更新"],
              "tickets": ["請求金額が間違っています", "ポータルにログインできません", "配送が遅れています",
                          "トレーニング日程の依頼", "迅速な対応に感謝します"],
              "campaigns": ["{y}年 春のキャンペーン", "{y}年 ユーザー会", "{y}年 年末セール"]},
    "fr_FR": {"country": "France", "deal": "{p} pour {c}",
              "products": ["Licence CRM Cloud", "Contrat de support Or", "Atelier de démarrage",
                           "Lecteur de codes-barres", "Migration des données", "Module d'analyse"],
              "talk": ["Suivi de la proposition", "Revue trimestrielle", "Questions sur les tarifs",
                       "Démonstration produit", "Renouvellement du contrat"],
              "tickets": ["Montant de la facture erroné", "Connexion au portail impossible", "Livraison en retard",
                          "Demande de date de formation", "Merci pour l'aide rapide"],
              "campaigns": ["Soldes de printemps {y}", "Journée clients {y}", "Rentrée {y}"]},
    "es_ES": {"country": "España", "deal": "{p} para {c}",
              "products": ["Licencia CRM Cloud", "Plan de soporte Oro", "Taller de puesta en marcha",
                           "Lector de códigos de barras", "Migración de datos", "Módulo de análisis"],
              "talk": ["Seguimiento de la propuesta", "Revisión trimestral", "Preguntas sobre precios",
                       "Demostración del producto", "Renovación del contrato"],
              "tickets": ["La factura tiene un importe incorrecto", "No puedo entrar en el portal",
                          "El envío llega tarde", "Solicitud de fecha de formación", "Gracias por la ayuda"],
              "campaigns": ["Rebajas de primavera {y}", "Encuentro de clientes {y}", "Vuelta al cole {y}"]},
}
_PRICES = [Decimal(p) for p in ("49.00", "129.90", "450.00", "89.50", "1200.00", "299.00")]
_PAYMENT = {"zh_CN": ["alipay", "wechat_pay", "bank_transfer"], "de_DE": ["direct_debit", "invoice", "paypal",
            "bank_transfer"], "ja_JP": ["credit_card", "bank_transfer", "cash"]}
_PAYMENT_DEFAULT = ["credit_card", "debit_card", "paypal", "bank_transfer", "invoice"]
_REPS = ["anna.schmidt@example.com", "li.wei@example.com", "john.miller@example.com", "sato.yuki@example.com",
         "marie.dubois@example.com", "carlos.garcia@example.com", "rep@example.com"]  # the last one: the demo sales rep
_STAGE_PROBABILITY = {"lead": 10, "qualified": 25, "proposal": 50, "negotiation": 75, "won": 100, "lost": 0}


class _Generator:
    """Makes the records, all in memory, with ids assigned up front."""

    def __init__(self, seed: int, taken_companies: set[str], offset: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in LOCALES}
        for n, fake in enumerate(self.fakers.values()):
            fake.seed_instance(seed + n)
        self.taken = set(taken_companies)
        self.offset = offset  # existing customers: keeps generated emails unique across runs
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.rows: dict[str, list[dict[str, Any]]] = {k: [] for k in _ORDER}
        self.locale_of: dict[str, str] = {}

    # --- helpers ----------------------------------------------------------------------------------------
    def _ago(self, max_days: int, min_days: int = 0) -> dt.datetime:
        return self.now - dt.timedelta(days=self.rng.randint(min_days, max_days), seconds=self.rng.randint(0, 86399))

    @staticmethod
    def _when(value: dt.datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    def _money(self, low: int, high: int) -> str:
        return f"{self.rng.randint(low, high)}.{self.rng.choice(['00', '50', '90', '99'])}"

    def _phone(self, loc: str) -> str:
        r = self.rng.randint
        return {"en_US": f"+1 {self.rng.choice(['212', '415', '312', '617'])} 555 {r(100, 199):04d}",
                "de_DE": f"+49 {self.rng.choice(['30', '40', '89', '69'])} {r(1000000, 9999999)}",
                "zh_CN": f"+86 13{r(0, 9)} {r(1000, 9999)} {r(1000, 9999)}",
                "ja_JP": f"+81 90 {r(1000, 9999)} {r(1000, 9999)}",
                "fr_FR": f"+33 6 {r(10, 99)} {r(10, 99)} {r(10, 99)} {r(10, 99)}",
                "es_ES": f"+34 6{r(10, 99)} {r(100, 999)} {r(100, 999)}"}[loc]

    def _add(self, entity: str, loc: str, values: dict[str, Any]) -> dict[str, Any]:
        record = {"id": new_id(), **{k: v for k, v in values.items() if v is not None}}
        self.rows[entity].append(record)
        self.locale_of[record["id"]] = loc
        return record

    # --- entities ---------------------------------------------------------------------------------------
    def companies(self, n: int) -> None:
        for _ in range(n):
            loc = self.rng.choice(LOCALES)
            fake = self.fakers[loc]
            name = fake.company()
            while name in self.taken:
                name = f"{fake.company()} {fake.city()}"
            self.taken.add(name)
            self._add("company", loc, {
                "name": name, "industry": self.rng.choice(["retail", "manufacturing", "technology", "finance",
                                                           "healthcare", "education", "hospitality", "logistics"]),
                "website": f"https://www.{fake.domain_name()}", "phone": self._phone(loc),
                "employees": self.rng.choice([8, 25, 60, 140, 500, 1200, 5000]),
                "annual_revenue": self._money(200_000, 90_000_000), "street": fake.street_address(),
                "city": fake.city(), "postal_code": fake.postcode(), "country": _LANG[loc]["country"],
                "rating": self.rng.randint(1, 5)})

    def customers(self, n: int) -> None:
        by_locale: dict[str, list[str]] = {}
        for c in self.rows["company"]:
            by_locale.setdefault(self.locale_of[c["id"]], []).append(c["id"])
        for i in range(n):
            loc = self.rng.choice(LOCALES)
            fake, rng = self.fakers[loc], self.rng
            gender = rng.choice(["female", "male", "female", "male", "diverse", "undisclosed"])
            name = fake.name_female() if gender == "female" else fake.name_male() if gender == "male" else fake.name()
            user = re.sub(r"[^a-z0-9]", "", fake.user_name().lower()) or "kunde"
            companies = by_locale.get(loc) or [c["id"] for c in self.rows["company"]]
            self._add("customer", loc, {
                "name": name, "gender": gender, "birthday": fake.date_of_birth(minimum_age=18, maximum_age=80)
                .isoformat(), "email": f"{user}{self.offset + i + 1}@{fake.free_email_domain()}",
                "phone": self._phone(loc), "street": fake.street_address(), "city": fake.city(),
                "postal_code": fake.postcode(), "country": _LANG[loc]["country"],
                "linkedin_url": f"https://www.linkedin.com/in/{user}-{rng.randint(100, 999)}" if rng.random() < .4
                else None,
                "twitter_handle": f"@{user[:12]}{rng.randint(10, 99)}" if rng.random() < .3 else None,
                "wechat_id": f"wxid_{user[:10]}{rng.randint(100, 999)}" if loc == "zh_CN" else None,
                "segment": rng.choice(["prospect", "new", "regular", "regular", "vip", "key_account", "at_risk",
                                       "churned"]),
                "preferred_channel": "wechat" if loc == "zh_CN" else rng.choice(
                    ["email", "phone", "sms", "whatsapp", "in_person", "post"]),
                "preferred_payment": rng.choice(_PAYMENT.get(loc, _PAYMENT_DEFAULT)),
                "product_preferences": rng.sample(["software", "hardware", "services", "support", "training",
                                                   "accessories"], rng.randint(0, 3)) or None,
                "company": rng.choice(companies) if companies and rng.random() < .7 else None,
                "purchase_frequency": rng.choice(["weekly", "monthly", "quarterly", "yearly", "occasional",
                                                  "one_time"]),
                "service_rating": rng.randint(1, 5) if rng.random() < .7 else None,
                "needs_analysis": fake.paragraph(nb_sentences=3) if rng.random() < .5 else None,
                "marketing_consent": rng.random() < .6})

    def campaigns(self, n: int) -> None:
        customers = self.rows["customer"]
        for _ in range(n):
            loc = self.rng.choice(LOCALES)
            start = (self.now - dt.timedelta(days=self.rng.randint(0, 700))).date()
            segments = self.rng.sample(["prospect", "new", "regular", "vip", "key_account", "at_risk"], 2)
            reached = [c["id"] for c in customers if c.get("segment") in segments]
            self._add("campaign", loc, {
                "name": self.rng.choice(_LANG[loc]["campaigns"]).format(y=start.year),
                "channel": self.rng.choice(["email", "social", "search", "event", "print", "sms"]),
                "budget": self._money(500, 50_000), "starts_on": start.isoformat(),
                "ends_on": (start + dt.timedelta(days=self.rng.randint(7, 60))).isoformat(),
                "responses": self.rng.randint(0, 900), "target_segments": segments,
                "customers_reached": self.rng.sample(reached, min(len(reached), self.rng.randint(5, 40))) or None})

    def deals(self, n: int) -> None:
        campaigns = [c["id"] for c in self.rows["campaign"]]
        company_names = {c["id"]: c["name"] for c in self.rows["company"]}
        for _ in range(n):
            customer = self.rng.choice(self.rows["customer"])
            loc = self.locale_of[customer["id"]]
            lang = _LANG[loc]
            stage = self.rng.choice(["lead", "qualified", "proposal", "negotiation", "won", "won", "lost"])
            company = company_names.get(customer.get("company", ""), customer["name"])
            closed = stage in ("won", "lost")
            close = self._ago(300) if closed else self.now + dt.timedelta(days=self.rng.randint(5, 180))
            source = self.rng.choice(["web", "referral", "campaign", "event", "cold_call", "partner"])
            self._add("deal", loc, {
                "title": lang["deal"].format(p=self.rng.choice(lang["products"]), c=company)[:200],
                "customer": customer["id"], "company": customer.get("company"), "stage": stage,
                "amount": self._money(1_000, 250_000) if stage != "lead" or self.rng.random() < .5 else None,
                "probability": _STAGE_PROBABILITY[stage], "expected_close": close.date().isoformat(),
                "closed_at": self._when(close) if closed else None, "owner": self.rng.choice(_REPS),
                "source": source,
                "campaign": self.rng.choice(campaigns) if source == "campaign" and campaigns else None})

    def orders(self, n: int) -> None:
        won: dict[str, list[str]] = {}
        for d in self.rows["deal"]:
            if d["stage"] == "won":
                won.setdefault(d["customer"], []).append(d["id"])
        spent: dict[str, Decimal] = {}
        for _ in range(n):
            customer = self.rng.choice(self.rows["customer"])
            loc = self.locale_of[customer["id"]]
            k = self.rng.randrange(len(_PRICES))
            quantity = self.rng.choice([1, 1, 1, 2, 3, 5, 10])
            status = self.rng.choice(["pending", "paid", "shipped", "delivered", "delivered", "delivered",
                                      "cancelled", "returned"])
            total = _PRICES[k] * quantity
            if status not in ("cancelled", "returned"):
                spent[customer["id"]] = spent.get(customer["id"], Decimal(0)) + total
            deals = won.get(customer["id"])
            self._add("sales_order", loc, {
                "customer": customer["id"], "deal": self.rng.choice(deals) if deals else None,
                "purchased_at": self._when(self._ago(720)), "product": _LANG[loc]["products"][k],
                "quantity": quantity, "unit_price": str(_PRICES[k]), "total": str(total), "status": status,
                "returned": status == "returned",
                "return_reason": self.fakers[loc].sentence() if status == "returned" else None})
        for c in self.rows["customer"]:
            c["lifetime_value"] = str(spent.get(c["id"], Decimal("0.00")))

    def interactions(self, n: int) -> None:
        deals: dict[str, list[str]] = {}
        for d in self.rows["deal"]:
            deals.setdefault(d["customer"], []).append(d["id"])
        for _ in range(n):
            customer = self.rng.choice(self.rows["customer"])
            loc = self.locale_of[customer["id"]]
            options = deals.get(customer["id"])
            self._add("interaction", loc, {
                "interaction_type": self.rng.choice(["call", "email", "chat", "meeting", "visit"]),
                "customer": customer["id"], "deal": self.rng.choice(options) if options else None,
                "occurred_at": self._when(self._ago(365)), "subject": self.rng.choice(_LANG[loc]["talk"]),
                "notes": self.fakers[loc].paragraph(nb_sentences=2) if self.rng.random() < .6 else None,
                "satisfaction": self.rng.randint(1, 5) if self.rng.random() < .5 else None})

    def tickets(self, n: int) -> None:
        for _ in range(n):
            customer = self.rng.choice(self.rows["customer"])
            loc = self.locale_of[customer["id"]]
            k = self.rng.randrange(len(_LANG[loc]["tickets"]))
            status = self.rng.choice(["open", "in_progress", "waiting_on_customer", "resolved", "closed"])
            opened = self._ago(200, 1)
            resolved = opened + dt.timedelta(hours=self.rng.randint(1, 240))
            self._add("ticket", loc, {
                "subject": _LANG[loc]["tickets"][k], "customer": customer["id"],
                "ticket_type": "feedback" if k == 4 else self.rng.choice(["complaint", "request"]),
                "priority": self.rng.choice(["low", "normal", "normal", "high", "urgent"]), "status": status,
                "description": self.fakers[loc].paragraph(nb_sentences=3), "opened_at": self._when(opened),
                "resolved_at": self._when(min(resolved, self.now)) if status in ("resolved", "closed") else None})

    def build(self, sizes: DemoSizes) -> dict[str, list[dict[str, Any]]]:
        """All records, by entity, in the order they must be written."""
        self.companies(sizes.companies)
        self.customers(sizes.customers)
        if sizes.customers:
            self.campaigns(sizes.campaigns)
            self.deals(sizes.deals)
            self.orders(sizes.orders)
            self.interactions(sizes.interactions)
            self.tickets(sizes.tickets)
        return self.rows


def load_demo(db: Database, sizes: DemoSizes = DEFAULT_SIZES, if_empty: bool = False, actor: str = "demo",
              seed: int | None = None, definition: Path = SALES_CRM) -> DemoResult:
    """Install the Sales CRM if it is not there and fill it with demo records in one transaction.
    With `if_empty`, nothing happens when the app already has customers."""
    result = DemoResult()
    apps = AppService(db)
    if APP not in {a.name for a in apps.list()}:
        apps.apply(definition.read_bytes(), actor=actor, note="demo")
        result.installed = True
    result.users = ensure_demo_users(db, actor)
    service = RecordService(db, APP, actor)
    existing = service.count("customer")
    if if_empty and existing:
        result.skipped = True
        return result
    taken = {c["name"] for c in iter_records(db, APP, "company")} if service.count("company", up_to=1) else set()
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    rows = _Generator(seed, taken, existing).build(sizes)
    with db.write() as conn:
        compiled = CATALOG.current(conn, APP)
        for entity in _ORDER:
            records = rows[entity]
            if not records:
                continue
            writer = Writer(conn, compiled, compiled.entity(entity), APP, actor)
            try:
                writer.insert(records, list(range(1, len(records) + 1)), keep_ids=True)
            except RecordValidationError as exc:  # the app was changed so that the demo data no longer fits
                raise RecordValidationError([FieldError(f"{entity}.{e.field}", e.message, e.line)
                                             for e in exc.errors[:20]]) from None
            result.created[entity] = len(records)
            ent = compiled.entity(entity)
            result.plurals[entity] = (ent.plural or ent.title).lower()
    return result
